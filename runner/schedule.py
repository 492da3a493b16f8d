"""Pure schedule arithmetic: the fire instants of cron, every and at schedules.

No I/O and no clock: ``after`` is always an argument. Results are timezone-aware datetimes
expressed in the schedule's zone. Cron expressions are evaluated on the zone's local wall
clock and mapped to real instants with the Vixie-cron daylight-saving rule:

    A fixed-hour schedule fires once -- in a skipped hour at the first valid instant after
    the gap, in a repeated hour at its first occurrence; a wildcard-hour schedule (hour field
    starting with ``*``, e.g. ``*`` or ``*/2``) fires every real hour (both occurrences of a
    repeated hour) and not at all for wall times inside a gap.

Identical instants are reported once.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, CroniterError, croniter

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")
_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)  # compare in UTC: same-zone comparisons ignore fold


def _offset(tz: ZoneInfo, instant: datetime) -> timedelta:
    return instant.astimezone(tz).utcoffset() or timedelta(0)


def _fields(expr: str) -> list[str]:
    """The five fields of ``expr`` (aliases expanded); ValueError if the shape is wrong."""
    fields = _ALIASES.get(expr.strip().lower(), expr).split()
    if not fields:
        raise ValueError("cron expression is empty")
    if len(fields) == 1 and fields[0].startswith("@"):
        raise ValueError(f"unknown alias {fields[0]!r}; expected one of {', '.join(_ALIASES)}")
    if len(fields) != 5:
        extra = "; seconds and year fields are not supported" if len(fields) in (6, 7) else ""
        raise ValueError(f"expected 5 fields ({' '.join(_NAMES)}), got {len(fields)}{extra}")
    return fields


def _field_reason(name: str, text: str, low: int, high: int) -> str:
    for part in text.split(","):
        values, _, step = part.partition("/")
        if step and step.isdigit() and int(step) == 0:
            return f"{name} step 0 in {text!r} is not allowed"
        for number in re.findall(r"\d+", values):
            if not low <= int(number) <= high:
                return f"{name} {int(number)} is out of range {low}-{high}"
    return f"{name} field {text!r} is not valid"


def cron_error(expr: str) -> str | None:
    """None if ``expr`` is a valid 5-field cron expression or alias, else the reason."""
    try:
        fields = _fields(expr)
    except ValueError as exc:
        return str(exc)
    for index, (name, (low, high)) in enumerate(zip(_NAMES, _RANGES, strict=True)):
        probe = ["*"] * index + [fields[index]] + ["*"] * (4 - index)
        if not croniter.is_valid(" ".join(probe)):
            return _field_reason(name, fields[index], low, high)
    if not croniter.is_valid(" ".join(fields)):
        return f"cron expression {expr!r} is not valid"
    try:
        croniter(" ".join(fields), datetime(2000, 1, 1)).get_next(datetime)
    except CroniterBadDateError:
        return f"cron expression {expr!r} never matches a real date"
    return None


def _transition(before: datetime, after: datetime, tz: ZoneInfo) -> datetime:
    """First instant in (before, after] (UTC, whole seconds) with after's offset in ``tz``."""
    target = _offset(tz, after)
    while after - before > timedelta(seconds=1):
        middle = before + timedelta(seconds=int((after - before).total_seconds()) // 2)
        if _offset(tz, middle) == target:
            after = middle
        else:
            before = middle
    return after


def _instants(wall: datetime, tz: ZoneInfo, wildcard_hour: bool) -> list[datetime]:
    """The UTC instants at which naive local ``wall`` fires, ascending."""
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if first == second:  # an ordinary wall time
        return [first]
    if first < second:  # repeated hour: fold=0 is the first occurrence
        return [first, second] if wildcard_hour else [first]
    # skipped hour: fold=1 lands before the transition, fold=0 after it
    return [] if wildcard_hour else [_transition(second, first, tz)]


def cron_fires(expr: str, tz: ZoneInfo, after: datetime, count: int) -> list[datetime]:
    """The first ``count`` fire instants of ``expr`` on ``tz``'s wall clock after ``after``."""
    after_utc = _aware(after, "after")
    fields = _fields(expr)
    if count <= 0:
        return []
    # Wall times up to after's own are past, except shortly before a fall back: a wall time
    # w then fires at w - (smaller new offset), so start that much earlier.
    offset = _offset(tz, after_utc)
    drop = offset - _offset(tz, after_utc + timedelta(days=1))
    if drop > timedelta(0):
        offset = min(offset, _offset(tz, after_utc + drop))
    start = after_utc.replace(tzinfo=None) + offset
    try:
        walls = croniter(" ".join(fields), start)
    except CroniterError as exc:
        raise ValueError(cron_error(expr) or str(exc)) from exc
    found: set[datetime] = set()
    while True:
        try:
            wall = walls.get_next(datetime)
        except CroniterBadDateError as exc:  # no further match within croniter's horizon
            if found:
                break
            raise ValueError(cron_error(expr) or str(exc)) from exc
        instants = _instants(wall, tz, fields[1].startswith("*"))
        # The earliest instant of a wall time never decreases as the wall time grows, so
        # once it passes the count-th instant found so far nothing later can sort before it.
        if instants and len(found) >= count and instants[0] > sorted(found)[count - 1]:
            break
        found.update(i for i in instants if i > after_utc)
    return [i.astimezone(tz) for i in sorted(found)[:count]]


def every_fires(seconds: int, tz: ZoneInfo, after: datetime, count: int) -> list[datetime]:
    """The first ``count`` epoch-aligned multiples of ``seconds`` strictly after ``after``."""
    after_utc = _aware(after, "after")
    if seconds <= 0:
        raise ValueError(f"interval must be a positive number of seconds, got {seconds}")
    step = timedelta(seconds=seconds)
    first = (after_utc - _EPOCH) // step + 1
    return [(_EPOCH + (first + k) * step).astimezone(tz) for k in range(max(count, 0))]


def at_fires(when: datetime, tz: ZoneInfo, after: datetime, count: int) -> list[datetime]:
    """``[when]`` (in ``tz``) if it is strictly after ``after`` and ``count`` > 0, else ``[]``."""
    when_utc, after_utc = _aware(when, "when"), _aware(after, "after")
    return [when_utc.astimezone(tz)] if count > 0 and when_utc > after_utc else []
