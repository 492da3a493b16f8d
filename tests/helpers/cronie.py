"""A test oracle: cronie's main loop (src/cron.c: main() and find_jobs()) transliterated, for one
job whose zone is the daemon's TZ, waking promptly every minute.

It decides *when* a job runs around clock changes straight from the source, independently of
runner and of crondst's own DST handling: the loop keeps a virtual clock of local minutes and, per
wake-up, classifies the jump of the local clock (normal +1, small, medium = DST starts, negative =
DST ends, large) exactly as cron.c does. Field matching uses crondst's parsed fields (minute, hour,
day, month and weekday sets, the '*' flags): cronie's bit strings for the generated expressions.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from crondst import CronDst, _CronEntry

MINUTE = timedelta(minutes=1)
_EPOCH = datetime(1970, 1, 1)


class _Fields(_CronEntry):
    def has_triggers(self) -> bool:
        """crondst refuses a cron whose largest day-of-month is missing from a selected month
        (``0 0 * 9 *``: no September 31st) though cronie runs it on the other days."""
        return True


def crondst(expr: str) -> CronDst:
    """crondst's CronDst for ``expr``, without its refusal of valid expressions (above)."""
    it = CronDst.__new__(CronDst)
    it.entry = _Fields.from_expression(expr)
    return it


class Entry:
    """One crontab entry's bit strings and flags (cronie's ``entry``)."""

    def __init__(self, expr: str) -> None:
        e = crondst(expr).entry
        self.minutes, self.hours = set(e.minutes), set(e.hours)
        self.days, self.months = set(e.days), set(e.months)
        self.weekdays = {d % 7 for d in e.days_of_week}  # "make sundays equivalent"
        self.day_star = e.day_star or e.day_of_week_star  # DOM_STAR | DOW_STAR
        self.wildcard = e.minute_star or e.hour_star  # MIN_STAR | HR_STAR

    def matches(self, local_minute: int) -> bool:
        """find_jobs' test of the wall time ``local_minute`` (minutes since the epoch, local)."""
        wall = _EPOCH + local_minute * MINUTE
        weekday = (wall.weekday() + 1) % 7
        day_ok = ((wall.day in self.days and weekday in self.weekdays) if self.day_star
                  else (wall.day in self.days or weekday in self.weekdays))
        return (wall.minute in self.minutes and wall.hour in self.hours
                and wall.month in self.months and day_ok)


def _clock(tz: ZoneInfo, instant: datetime) -> int:
    """set_time(): clockTime, the local time in minutes since the epoch."""
    offset = instant.astimezone(tz).utcoffset() or timedelta(0)
    return int((instant + offset - _EPOCH.replace(tzinfo=UTC)).total_seconds()) // 60


def runs(expr: str, tz: ZoneInfo, begin: datetime, end: datetime) -> list[datetime]:
    """The instants in (begin, end] at which cronie starts the job (a job started twice at one
    wake-up is listed twice); begin and end are aware and on whole minutes."""
    entry, out = Entry(expr), []
    now = begin.astimezone(UTC)
    virtual = _clock(tz, now)

    def find(vtime: int, wild: bool, fixed: bool) -> None:
        if entry.matches(vtime) and (wild if entry.wildcard else fixed):
            out.append(now)

    while now < end:
        now += MINUTE
        running = _clock(tz, now)
        diff = running - virtual
        if diff == 1:
            virtual = running
            find(virtual, True, True)
        elif diff > 180 or diff < -180:  # large: jump the virtual clock, run everything
            virtual = running
            find(running, True, True)
        elif diff > 5:  # medium (DST starts): wildcard jobs now, fixed jobs of each missed minute
            find(running, True, False)
            while virtual < running:
                virtual += 1
                find(virtual, False, True)
        elif diff > 0:  # small: catch up minute by minute
            while virtual < running:
                virtual += 1
                find(virtual, True, True)
        else:  # negative (DST ends): wildcard jobs only; the virtual clock waits
            find(running, True, False)
    return out
