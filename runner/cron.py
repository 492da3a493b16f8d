"""Vixie cron expressions, read as cronie reads them, and the wall-clock minutes they match.

Pure. Grammar and meaning follow cronie's source (src/entry.c ``get_list``/``get_range``,
src/cron.c ``find_jobs``):

- a field is a comma list of ``*``, ``N``, ``N-M``, ``*/S`` and ``N-M/S``; N and M are numbers in
  the field's range or, for month and day-of-week, three-letter English names in any case; ``N-N``
  is the single value N and ``N-N/S`` too; day-of-week 7 is Sunday like 0, and a day-of-week range
  may end in Sunday as ``5-0`` (cronie reads it as 5-7). Other syntax cronie refuses or reads as
  something nobody means (``N/S``, backward ranges, which never fire) is refused with the fix.
- day of month and day of week: when either field starts with ``*`` (``*``, ``*/2``) a day must
  match both fields, otherwise a day matching either one fires.
- a wildcard job, for the daylight-saving rule, is one whose minute or hour field starts with
  ``*`` (cronie's MIN_STAR | HR_STAR); see runner.schedule.

Jenkins' hash spread (``H``, ``H/S``, ``H(N-M)``, ``H(N-M)/S``) is not cron: ``hashed`` turns it
into plain numbers chosen by a SHA-256 of the schedule's name before ``parse`` reads the
expression, so an ``H`` counts as a number, never as a ``*``, for both rules above.
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_left, bisect_right
from calendar import monthrange
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day-of-month", 1, 31, {}),
    ("month", 1, 12, {n: i for i, n in enumerate(_MONTHS, 1)}),
    ("day-of-week", 0, 7, {n: i for i, n in enumerate(_WEEKDAYS)}),
)
_PART = re.compile(r"(\*|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/([0-9]{1,9}))?")
_SYNTAX = "use *, N, N-M, */S, N-M/S or a comma list of them"
_H_PART = re.compile(r"h(?:\(([0-9a-z]+)-([0-9a-z]+)\))?(?:/([0-9]{1,9}))?")
_H_WORD = re.compile(r"(?<![a-z])h(?![a-z])")  # an H token, not the h of 'thu'
_H_SYNTAX = "use H, H/S, H(N-M) or H(N-M)/S as a whole comma-separated part, e.g. H(0-29)/10"
_H_RANGE = {2: (1, 28), 4: (0, 6)}  # Jenkins: day-of-month H spreads over 1-28, weekday 0-6
# The Gregorian calendar repeats, weekdays included, every 400 years: a cron that matches no
# minute in 400 years from any start never matches.
_SCANNED_MONTHS = 400 * 12 + 1


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression: the minutes, hours, days, months and weekdays it fires at."""

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0-6, Sunday 0
    both_days: bool  # day-of-month or day-of-week starts with '*': a day must match both
    wildcard: bool  # minute or hour starts with '*': the DST rule's wildcard job

    def fires_on(self, day: int, weekday: int) -> bool:
        if self.both_days:
            return day in self.days and weekday in self.weekdays
        return day in self.days or weekday in self.weekdays


def _fields(expr: str) -> list[str]:
    """The five fields of ``expr`` (aliases expanded); ValueError if the shape is wrong."""
    fields = ALIASES.get(expr.strip().lower(), expr).split()
    if not fields:
        raise ValueError("cron expression is empty")
    if len(fields) == 1 and fields[0].startswith("@"):
        raise ValueError(f"unknown alias {fields[0]!r}; expected one of {', '.join(ALIASES)}")
    if len(fields) != 5:
        names = " ".join(f[0] for f in _FIELDS)
        extra = "; seconds and year fields are not supported" if len(fields) in (6, 7) else ""
        raise ValueError(f"expected 5 fields ({names}), got {len(fields)}{extra}")
    return fields


def _number(token: str, field: int, text: str) -> int:
    name, low, high, names = _FIELDS[field]
    value = int(token) if token.isdigit() and len(token) < 100 else names.get(token)
    if value is None:
        raise ValueError(f"{name} field {text!r} is not valid; {_SYNTAX}")
    if not low <= value <= high:
        raise ValueError(f"{name} {value} is out of range {low}-{high}")
    return value


def _values(text: str, field: int) -> set[int]:
    """The values a field's text selects, as cronie's get_list; ValueError with the fix."""
    name, low, high, _ = _FIELDS[field]
    out: set[int] = set()
    for part in text.lower().split(","):
        match = _PART.fullmatch(part)
        if match is None:
            raise ValueError(f"{name} field {text!r} is not valid; {_SYNTAX}")
        head, step_text = match.groups()
        step = int(step_text) if step_text is not None else None
        if step == 0:
            raise ValueError(f"{name} step 0 in {text!r} is not allowed")
        first, _, last = head.partition("-")
        if head == "*":
            start, end = low, high
        elif not last:
            start = end = _number(first, field, text)
            if step is not None:
                raise ValueError(f"{name} field {text!r} is not valid; a step needs a range: "
                                 f"write {start}-{high}/{step}")
        else:
            start, end = _number(first, field, text), _number(last, field, text)
            if start > end and end == 0 and step is None and field == 4:
                end = 7  # cronie: a day-of-week range ending in Sunday, e.g. fri-sun
            elif start > end:
                by = f"/{step}" if step else ""
                raise ValueError(f"{name} range {part!r} runs backwards and would never fire; "
                                 f"write {start}-{high}{by},{low}-{end}{by}")
        out.update(range(start, end + 1, step or 1))
    return out


def spread(name: str, field: str) -> int:
    """The stable hash of a schedule's name for one field: the same on every machine."""
    digest = hashlib.sha256(f"{name}\0{field}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _hashed_part(part: str, field: int, name: str, text: str) -> str:
    """One ``H`` part as cron text: ``H`` a number, ``H/S`` and ``H(N-M)/S`` ``F-M/S``."""
    fname, low, high, _ = _FIELDS[field]
    match = _H_PART.fullmatch(part.lower())
    if match is None:
        raise ValueError(f"{fname} field {text!r} is not valid; {_H_SYNTAX}")
    first, last, step_text = match.groups()
    if first is None:
        start, end = _H_RANGE.get(field, (low, high))
    else:
        start, end = _number(first, field, text), _number(last, field, text)
        if start > end:
            raise ValueError(f"{fname} range in {part!r} runs backwards; write H({end}-{start})"
                             f" or split it: H({start}-{high}),H({low}-{end})")
    value = spread(name, fname)
    if step_text is None:
        return str(start + value % (end - start + 1))
    step = int(step_text)
    if not 0 < step <= end - start + 1:
        raise ValueError(f"{fname} step {step} in {part!r} must be 1 to {end - start + 1}, "
                         f"the size of the range {start}-{end}")
    return f"{start + value % step}-{end}/{step}"


def hashed(expr: str, name: str) -> str:
    """``expr`` with Jenkins' ``H`` parts replaced by the values the hash of ``name`` picks
    (``expr`` itself when it has none); ValueError with the fix for a malformed ``H``."""
    fields = _fields(expr)
    if not any(_H_WORD.search(text.lower()) for text in fields):
        return expr
    out = []
    for i, text in enumerate(fields):
        parts = text.split(",")
        for part in parts:
            if _H_WORD.search(part.lower()) and not part.lower().startswith("h"):
                raise ValueError(f"{_FIELDS[i][0]} field {text!r} is not valid; {_H_SYNTAX}")
        out.append(",".join(_hashed_part(p, i, name, text) if p.lower().startswith("h") else p
                            for p in parts))
    return " ".join(out)


@lru_cache(maxsize=4096)  # a repository repeats a few expressions many times
def parse(expr: str) -> Cron:
    """``expr`` as cronie reads it; ValueError naming the field, the value and the fix."""
    fields = _fields(expr)
    values = [_values(text, i) for i, text in enumerate(fields)]
    stars = [text.startswith("*") for text in fields]
    return Cron(
        minutes=tuple(sorted(values[0])), hours=tuple(sorted(values[1])),
        days=frozenset(values[2]), months=frozenset(values[3]),
        weekdays=frozenset(v % 7 for v in values[4]),
        both_days=stars[2] or stars[4], wildcard=stars[0] or stars[1],
    )


def walls(cron: Cron, after: datetime) -> Iterator[datetime]:
    """The naive wall-clock minutes ``cron`` matches strictly after naive ``after``, ascending,
    for 400 years (or to year 9999)."""
    year, month, day = after.year, after.month, after.day
    hour, minute = after.hour, after.minute  # the first day starts after these
    for _ in range(_SCANNED_MONTHS):
        if month in cron.months:
            weekday, length = monthrange(year, month)  # of the 1st, Monday 0
            for d in range(day, length + 1):
                if cron.fires_on(d, (weekday + d) % 7):
                    for h in cron.hours[bisect_left(cron.hours, hour):]:
                        later = bisect_right(cron.minutes, minute) if h == hour else 0
                        for m in cron.minutes[later:]:
                            yield datetime(year, month, d, h, m)
                hour = minute = -1
        hour = minute = -1
        day, month = 1, month + 1
        if month == 13:
            year, month = year + 1, 1
            if year > 9999:
                return


def cron_error(expr: str) -> str | None:
    """None if ``expr`` is a valid cron expression or alias, else the reason."""
    try:
        cron = parse(expr)
    except ValueError as exc:
        return str(exc)
    if next(walls(cron, datetime(2000, 1, 1)), None) is None:
        return f"cron expression {expr!r} never matches a real date"
    return None
