"""Table-driven tests for runner.schedule (pure fire-time arithmetic, no clock, no sleeps).

2026 transitions used below:
  Europe/Berlin        spring 03-29 02:00 -> 03:00 (+01 -> +02), fall 10-25 03:00 -> 02:00
  America/New_York     spring 03-08 02:00 -> 03:00 (-05 -> -04), fall 11-01 02:00 -> 01:00
  Australia/Lord_Howe  fall 04-05 02:00 -> 01:30 (+11 -> +10:30), spring 10-04 02:00 -> 02:30
  America/Santiago     spring 09-06 00:00 -> 01:00 (-04 -> -03)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from runner.cron import cron_error
from runner.schedule import at_fires, cron_fires, every_fires

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"
LORD_HOWE = "Australia/Lord_Howe"


def iso(values: list[datetime]) -> list[str]:
    return [v.isoformat() for v in values]


CRON_CASES = [
    # --- plain UTC / no-DST zones
    ("*/15 9-10 * * 1-5", "UTC", "2026-01-02T10:40:00+00:00", 3,
     ["2026-01-02T10:45:00+00:00", "2026-01-05T09:00:00+00:00", "2026-01-05T09:15:00+00:00"]),
    ("@daily", "UTC", "2026-01-01T00:00:00+00:00", 2,
     ["2026-01-02T00:00:00+00:00", "2026-01-03T00:00:00+00:00"]),
    ("0 9 * * *", "Asia/Tokyo", "2026-03-29T00:00:00+00:00", 2,  # after == 09:00 JST: excluded
     ["2026-03-30T09:00:00+09:00", "2026-03-31T09:00:00+09:00"]),
    ("0 12 1 * *", "Asia/Tokyo", "2026-01-15T00:00:00.123456+00:00", 2,
     ["2026-02-01T12:00:00+09:00", "2026-03-01T12:00:00+09:00"]),
    # --- Berlin spring forward: fixed hour fires once at the first instant after the gap
    ("30 2 * * *", BERLIN, "2026-03-28T12:00:00+01:00", 2,
     ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]),
    ("0 2 * * *", BERLIN, "2026-03-28T12:00:00+01:00", 2,
     ["2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00"]),
    ("30 2 * * *", BERLIN, "2026-03-29T03:00:00+02:00", 1,  # after == the gap firing
     ["2026-03-30T02:30:00+02:00"]),
    # --- Berlin spring forward: wildcard hour skips the missing wall times
    ("0 * * * *", BERLIN, "2026-03-29T00:30:00+01:00", 3,
     ["2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"]),
    ("*/30 * * * *", BERLIN, "2026-03-29T01:00:00+01:00", 3,
     ["2026-03-29T01:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00"]),
    # --- Berlin fall back: fixed hour fires at the first occurrence only
    ("30 2 * * *", BERLIN, "2026-10-24T12:00:00+02:00", 2,
     ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]),
    ("0 2 * * *", BERLIN, "2026-10-24T12:00:00+02:00", 2,
     ["2026-10-25T02:00:00+02:00", "2026-10-26T02:00:00+01:00"]),
    ("30 2 * * *", BERLIN, "2026-10-25T00:45:00+00:00", 1,  # after inside the repeated hour
     ["2026-10-26T02:30:00+01:00"]),
    # --- Berlin fall back: wildcard hour fires in both occurrences, in real-time order
    ("0 * * * *", BERLIN, "2026-10-25T00:30:00+02:00", 4,
     ["2026-10-25T01:00:00+02:00", "2026-10-25T02:00:00+02:00",
      "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"]),
    ("*/30 * * * *", BERLIN, "2026-10-25T01:45:00+02:00", 5,
     ["2026-10-25T02:00:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-25T02:00:00+01:00",
      "2026-10-25T02:30:00+01:00", "2026-10-25T03:00:00+01:00"]),
    ("*/30 * * * *", BERLIN, "2026-10-25T01:15:00+00:00", 2,  # after = 02:15+01:00 (2nd pass)
     ["2026-10-25T02:30:00+01:00", "2026-10-25T03:00:00+01:00"]),
    ("@hourly", BERLIN, "2026-10-25T01:30:00+02:00", 3,  # @hourly is 0 * * * *: wildcard
     ["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"]),
    # --- New York
    ("30 2 * * *", NEW_YORK, "2026-03-07T12:00:00-05:00", 2,
     ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"]),
    ("*/30 * * * *", NEW_YORK, "2026-03-08T01:00:00-05:00", 3,
     ["2026-03-08T01:30:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:30:00-04:00"]),
    ("15 1 * * *", NEW_YORK, "2026-10-31T12:00:00-04:00", 2,
     ["2026-11-01T01:15:00-04:00", "2026-11-02T01:15:00-05:00"]),
    ("0 * * * *", NEW_YORK, "2026-11-01T00:30:00-04:00", 3,
     ["2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00"]),
    # --- dedupe: several wall times of the gap (or the gap and its end) are one instant
    ("0,30 2 * * *", BERLIN, "2026-03-28T12:00:00+01:00", 3,
     ["2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00", "2026-03-30T02:30:00+02:00"]),
    ("0 2,3 * * *", BERLIN, "2026-03-28T12:00:00+01:00", 3,
     ["2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00", "2026-03-30T03:00:00+02:00"]),
    ("10,20 2 * * *", NEW_YORK, "2026-03-08T01:00:00-05:00", 2,
     ["2026-03-08T03:00:00-04:00", "2026-03-09T02:10:00-04:00"]),
    # --- Lord Howe: 30-minute shift
    ("15 2 * * *", LORD_HOWE, "2026-10-03T12:00:00+10:30", 2,
     ["2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"]),
    ("*/15 * * * *", LORD_HOWE, "2026-10-04T01:30:00+10:30", 3,
     ["2026-10-04T01:45:00+10:30", "2026-10-04T02:30:00+11:00", "2026-10-04T02:45:00+11:00"]),
    ("45 1 * * *", LORD_HOWE, "2026-04-04T12:00:00+11:00", 2,
     ["2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"]),
    ("*/15 * * * *", LORD_HOWE, "2026-04-05T01:20:00+11:00", 5,
     ["2026-04-05T01:30:00+11:00", "2026-04-05T01:45:00+11:00", "2026-04-05T01:30:00+10:30",
      "2026-04-05T01:45:00+10:30", "2026-04-05T02:00:00+10:30"]),
    # --- Santiago: midnight itself is skipped, so @daily fires at 01:00 that day
    ("@daily", "America/Santiago", "2026-09-05T12:00:00-04:00", 2,
     ["2026-09-06T01:00:00-03:00", "2026-09-07T00:00:00-03:00"]),
    # --- count 0
    ("* * * * *", BERLIN, "2026-03-29T01:00:00+01:00", 0, []),
]  # fmt: skip


@pytest.mark.parametrize(("expr", "zone", "after", "count", "expected"), CRON_CASES)
def test_cron_fires(expr: str, zone: str, after: str, count: int, expected: list[str]) -> None:
    assert iso(cron_fires(expr, ZoneInfo(zone), datetime.fromisoformat(after), count)) == expected


def test_cron_fires_results_are_in_zone_and_sorted() -> None:
    tz = ZoneInfo(BERLIN)
    fires = cron_fires("*/20 * * * *", tz, datetime(2026, 10, 24, 22, tzinfo=UTC), 30)
    assert all(f.tzinfo is tz for f in fires)
    instants = [f.astimezone(UTC) for f in fires]
    assert instants == sorted(set(instants))
    assert len(instants) == 30


@pytest.mark.parametrize("expr", ["61 * * * *", "* * * * * *", "garbage", ""])
def test_cron_fires_rejects_bad_expressions(expr: str) -> None:
    with pytest.raises(ValueError):
        cron_fires(expr, ZoneInfo("UTC"), datetime(2026, 1, 1, tzinfo=UTC), 1)


EVERY_CASES = [
    (3600, "UTC", "2026-01-01T10:00:00+00:00", 2,  # on a boundary: strictly after
     ["2026-01-01T11:00:00+00:00", "2026-01-01T12:00:00+00:00"]),
    (3600, "UTC", "2026-01-01T10:00:00.000001+00:00", 1, ["2026-01-01T11:00:00+00:00"]),
    (3600, "UTC", "2026-01-01T09:59:59.999999+00:00", 1, ["2026-01-01T10:00:00+00:00"]),
    (1000, "UTC", "2026-01-01T00:00:00+00:00", 2,  # aligned to the epoch, not to `after`
     ["2026-01-01T00:06:40+00:00", "2026-01-01T00:23:20+00:00"]),
    (86400, NEW_YORK, "2026-01-01T00:00:00+00:00", 2,  # UTC days, shown in local time
     ["2026-01-01T19:00:00-05:00", "2026-01-02T19:00:00-05:00"]),
    (300, BERLIN, "2026-03-29T01:58:00+01:00", 2,
     ["2026-03-29T03:00:00+02:00", "2026-03-29T03:05:00+02:00"]),
    (1800, BERLIN, "2026-10-25T02:15:00+02:00", 4,  # real time keeps going through fall back
     ["2026-10-25T02:30:00+02:00", "2026-10-25T02:00:00+01:00",
      "2026-10-25T02:30:00+01:00", "2026-10-25T03:00:00+01:00"]),
    (60, "UTC", "2026-01-01T00:00:00+00:00", 0, []),
]  # fmt: skip


@pytest.mark.parametrize(("seconds", "zone", "after", "count", "expected"), EVERY_CASES)
def test_every_fires(seconds: int, zone: str, after: str, count: int, expected: list[str]) -> None:
    fires = every_fires(seconds, ZoneInfo(zone), datetime.fromisoformat(after), count)
    assert iso(fires) == expected


@pytest.mark.parametrize("seconds", [0, -60])
def test_every_fires_rejects_non_positive_interval(seconds: int) -> None:
    with pytest.raises(ValueError):
        every_fires(seconds, ZoneInfo("UTC"), datetime(2026, 1, 1, tzinfo=UTC), 1)


AT_CASES = [
    ("2026-05-01T12:00:00+00:00", BERLIN, "2026-04-01T00:00:00+00:00", 1,
     ["2026-05-01T14:00:00+02:00"]),
    ("2026-05-01T12:00:00+00:00", BERLIN, "2026-05-01T12:00:00+00:00", 1, []),  # not after
    ("2026-05-01T12:00:00+00:00", BERLIN, "2026-06-01T00:00:00+00:00", 1, []),  # past
    ("2026-05-01T12:00:00+00:00", NEW_YORK, "2026-04-01T00:00:00+00:00", 5,
     ["2026-05-01T08:00:00-04:00"]),
    ("2026-05-01T12:00:00+00:00", BERLIN, "2026-04-01T00:00:00+00:00", 0, []),
]  # fmt: skip


@pytest.mark.parametrize(("when", "zone", "after", "count", "expected"), AT_CASES)
def test_at_fires(when: str, zone: str, after: str, count: int, expected: list[str]) -> None:
    fires = at_fires(
        datetime.fromisoformat(when), ZoneInfo(zone), datetime.fromisoformat(after), count
    )
    assert iso(fires) == expected


NAIVE = datetime(2026, 1, 1, 12, 0)
AWARE = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "call",
    [
        lambda: cron_fires("* * * * *", ZoneInfo("UTC"), NAIVE, 1),
        lambda: every_fires(60, ZoneInfo("UTC"), NAIVE, 1),
        lambda: at_fires(AWARE, ZoneInfo("UTC"), NAIVE, 1),
        lambda: at_fires(NAIVE, ZoneInfo("UTC"), AWARE, 1),
    ],
    ids=["cron-after", "every-after", "at-after", "at-when"],
)
def test_naive_datetimes_are_rejected(call: Callable[[], list[datetime]]) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        call()


@pytest.mark.parametrize(
    "expr",
    [
        "* * * * *",
        "*/5 9-17 * * 1-5",
        "0 0 1 jan *",
        "0 0 * * sun,sat",
        "0 0 * * 7",
        "  30 2 * * *  ",
        "@hourly",
        "@daily",
        "@weekly",
        "@monthly",
        "@yearly",
    ],
)
def test_cron_error_accepts(expr: str) -> None:
    assert cron_error(expr) is None


@pytest.mark.parametrize(
    ("expr", "reason"),
    [
        ("61 * * * *", "minute 61 is out of range 0-59"),
        ("0 24 * * *", "hour 24 is out of range 0-23"),
        ("0 0 32 * *", "day-of-month 32 is out of range 1-31"),
        ("0 0 0 * *", "day-of-month 0 is out of range 1-31"),
        ("0 0 * 13 *", "month 13 is out of range 1-12"),
        ("0 0 * * 8", "day-of-week 8 is out of range 0-7"),
        ("1,2,99 * * * *", "minute 99 is out of range 0-59"),
        ("*/0 * * * *", "minute step 0 in '*/0' is not allowed"),
        ("a b c d e", "minute field 'a' is not valid"),
        ("0 0 * jan-foo *", "month field 'jan-foo' is not valid"),
        ("0 0 30 2 *", "cron expression '0 0 30 2 *' never matches a real date"),
        ("@reboot", "unknown alias '@reboot'"),
        ("", "cron expression is empty"),
        ("   ", "cron expression is empty"),
        ("garbage", "expected 5 fields (minute hour day-of-month month day-of-week), got 1"),
        ("* * * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 4"),
        ("0 * * * * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 6; "
                        "seconds and year fields are not supported"),
        ("0 0 * * * * 2026", "expected 5 fields (minute hour day-of-month month day-of-week), "
                             "got 7; seconds and year fields are not supported"),
    ],
)  # fmt: skip
def test_cron_error_rejects(expr: str, reason: str) -> None:
    error = cron_error(expr)
    assert error is not None
    assert error.startswith(reason)
