"""Pure schedule arithmetic: the fire instants of cron, every and at schedules.

No I/O and no clock: ``after`` is always an argument. Results are timezone-aware datetimes
expressed in the schedule's zone. Cron expressions (read as Vixie cron reads them, see
runner.cron) are evaluated on the zone's local wall clock and mapped to real instants with
Vixie cron's daylight-saving rule (cronie's src/cron.c main loop):

    A fixed-time schedule fires once -- in a skipped hour at the first instant after the
    jump, in a repeated hour at its first occurrence; a wildcard schedule (minute or hour
    field starting with ``*``, e.g. ``*/15 2 * * *`` or ``0 * * * *``) fires at every real
    occurrence of its wall times (both occurrences of a repeated hour) and not at all for
    wall times inside a gap.

Identical instants are reported once (cronie would start a fixed-time job once per skipped
wall time, moments apart, at the jump).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from runner.cron import parse, walls

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)  # compare in UTC: same-zone comparisons ignore fold


def _offset(tz: ZoneInfo, instant: datetime) -> timedelta:
    return instant.astimezone(tz).utcoffset() or timedelta(0)


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


def _instants(wall: datetime, tz: ZoneInfo, wildcard: bool) -> list[datetime]:
    """The UTC instants at which naive local ``wall`` fires, ascending."""
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if first == second:  # an ordinary wall time
        return [first]
    if first < second:  # repeated hour: fold=0 is the first occurrence
        return [first, second] if wildcard else [first]
    # skipped hour: fold=1 lands before the transition, fold=0 after it
    return [] if wildcard else [_transition(second, first, tz)]


def cron_fires(expr: str, tz: ZoneInfo, after: datetime, count: int) -> list[datetime]:
    """The first ``count`` fire instants of ``expr`` on ``tz``'s wall clock after ``after``."""
    after_utc = _aware(after, "after")
    cron = parse(expr)
    if count <= 0:
        return []
    # Wall times up to after's own are past, except shortly before a fall back: a wall time
    # w then fires at w - (smaller new offset), so start that much earlier.
    offset = _offset(tz, after_utc)
    drop = offset - _offset(tz, after_utc + timedelta(days=1))
    if drop > timedelta(0):
        offset = min(offset, _offset(tz, after_utc + drop))
    start = after_utc.replace(tzinfo=None) + offset
    found: set[datetime] = set()
    for wall in walls(cron, start):
        instants = _instants(wall, tz, cron.wildcard)
        # The earliest instant of a wall time never decreases as the wall time grows, so
        # once it passes the count-th instant found so far nothing later can sort before it.
        if instants and len(found) >= count and instants[0] > sorted(found)[count - 1]:
            break
        found.update(i for i in instants if i > after_utc)
    if not found:
        raise ValueError(f"cron expression {expr!r} never matches a real date after {after}")
    return [i.astimezone(tz) for i in sorted(found)[:count]]


def every_fires(seconds: int, tz: ZoneInfo, after: datetime, count: int) -> list[datetime]:
    """The first ``count`` epoch-aligned multiples of ``seconds`` strictly after ``after``."""
    after_utc = _aware(after, "after")
    if seconds <= 0:
        raise ValueError(f"interval must be a positive number of seconds, got {seconds}")
    step = timedelta(seconds=seconds)
    first = (after_utc - _EPOCH) // step + 1
    return [(_EPOCH + (first + k) * step).astimezone(tz) for k in range(max(count, 0))]


def jitter_offset(name: str, jitter: int) -> int:
    """The whole seconds in [0, jitter) by which the schedule ``name`` delays each firing: a
    SHA-256 of the name, the same on every machine and every run (0 without jitter)."""
    if jitter <= 0:
        return 0
    digest = hashlib.sha256(f"jitter\0{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % jitter


def at_fires(when: datetime, tz: ZoneInfo, after: datetime, count: int) -> list[datetime]:
    """``[when]`` (in ``tz``) if it is strictly after ``after`` and ``count`` > 0, else ``[]``."""
    when_utc, after_utc = _aware(when, "when"), _aware(after, "after")
    return [when_utc.astimezone(tz)] if count > 0 and when_utc > after_utc else []
