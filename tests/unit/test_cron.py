"""Table-driven tests: cron means what Vixie cron (cronie) means.

Each table pins one rule of cronie's source (src/entry.c parses, src/cron.c fires). 2027 clock
changes used below:
  Europe/Berlin        spring 03-28 02:00 -> 03:00, fall 10-31 03:00 -> 02:00
  Australia/Lord_Howe  fall 04-04 02:00 -> 01:30 (+11 -> +10:30), spring 10-03 02:00 -> 02:30
  Pacific/Chatham      fall 04-04 03:45 -> 02:45 (+13:45 -> +12:45), spring 09-26 02:45 -> 03:45
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from runner.cron import cron_error
from runner.schedule import cron_fires

BERLIN, LORD_HOWE, CHATHAM = "Europe/Berlin", "Australia/Lord_Howe", "Pacific/Chatham"
NEW_YEAR = "2027-01-01T00:00:00+00:00"  # a Friday


def fires(expr: str, zone: str, after: str, count: int) -> list[str]:
    return [f.isoformat() for f in cron_fires(expr, ZoneInfo(zone), datetime.fromisoformat(after),
                                              count)]


def days(expr: str, count: int) -> list[str]:
    """The dates of the first ``count`` firings after NEW_YEAR, in UTC."""
    return [f[:10] for f in fires(expr, "UTC", NEW_YEAR, count)]


# get_range: "N-N" is the single value N (croniter read it as the whole field), with a step too.
@pytest.mark.parametrize(("expr", "expected"), [
    ("5-5 * * * *", ["00:05", "01:05", "02:05"]),
    ("10-10/5 * * * *", ["00:10", "01:10", "02:10"]),
    ("0,30-30 3-3 * * *", ["03:00", "03:30", "03:00"]),
])  # fmt: skip
def test_one_value_range_is_that_value(expr: str, expected: list[str]) -> None:
    assert [f[11:16] for f in fires(expr, "UTC", NEW_YEAR, 3)] == expected


@pytest.mark.parametrize(("expr", "expected"), [
    ("0 0 * * 1-1", ["2027-01-04", "2027-01-11"]),                 # Mondays only
    ("0 0 15-15/7 * *", ["2027-01-15", "2027-02-15"]),
    ("0 0 1 2-2 *", ["2027-02-01", "2028-02-01"]),
])  # fmt: skip
def test_one_value_range_in_day_fields(expr: str, expected: list[str]) -> None:
    assert days(expr, 2) == expected


# find_jobs: a day must match both day fields when either starts with '*' (DOM_STAR|DOW_STAR),
# otherwise either one.
@pytest.mark.parametrize(("expr", "expected"), [
    ("0 12 */2 * 1", ["2027-01-11", "2027-01-25", "2027-02-01", "2027-02-15"]),  # odd Mondays
    ("0 12 1 * */2", ["2027-04-01", "2027-05-01", "2027-06-01", "2027-07-01"]),  # Sun/Tue/Thu/Sat
    ("0 12 */10 * mon-fri", ["2027-01-01", "2027-01-11", "2027-01-21", "2027-02-01"]),
    ("0 12 1,15 * 1", ["2027-01-01", "2027-01-04", "2027-01-11", "2027-01-15"]),  # either
    ("0 12 * * 1", ["2027-01-04", "2027-01-11", "2027-01-18", "2027-01-25"]),
    ("0 12 13 * 5", ["2027-01-01", "2027-01-08", "2027-01-13", "2027-01-15"]),   # either
    ("0 0 * * fri-sun", ["2027-01-02", "2027-01-03", "2027-01-08", "2027-01-09"]),  # 5-0 is 5-7
    ("0 0 * * 5-0", ["2027-01-02", "2027-01-03", "2027-01-08", "2027-01-09"]),
    ("0 0 * * SAT,Sun", ["2027-01-02", "2027-01-03", "2027-01-09", "2027-01-10"]),
    ("0 0 * * 7", ["2027-01-03", "2027-01-10", "2027-01-17", "2027-01-24"]),
    ("0 0 1 JAN-mar/2 *", ["2027-03-01", "2028-01-01", "2028-03-01", "2029-01-01"]),
])  # fmt: skip
def test_day_of_month_and_day_of_week(expr: str, expected: list[str]) -> None:
    assert days(expr, 4) == expected


# cron.c main loop: a wildcard job (minute OR hour field starting with '*') runs at every real
# occurrence of its wall times -- not inside a gap, twice in a repeated period; a fixed-time job
# runs once: at the jump for a skipped time, at the first occurrence of a repeated one.
@pytest.mark.parametrize(("expr", "zone", "after", "count", "expected"), [
    ("*/15 2 * * *", BERLIN, "2027-03-27T12:00:00+01:00", 2,
     ["2027-03-29T02:00:00+02:00", "2027-03-29T02:15:00+02:00"]),
    ("*/30 2 * * *", BERLIN, "2027-10-30T12:00:00+02:00", 5,
     ["2027-10-31T02:00:00+02:00", "2027-10-31T02:30:00+02:00", "2027-10-31T02:00:00+01:00",
      "2027-10-31T02:30:00+01:00", "2027-11-01T02:00:00+01:00"]),
    ("* 2 * * *", BERLIN, "2027-10-31T02:58:00+02:00", 3,
     ["2027-10-31T02:59:00+02:00", "2027-10-31T02:00:00+01:00", "2027-10-31T02:01:00+01:00"]),
    ("*/15 1 * * *", LORD_HOWE, "2027-04-03T12:00:00+11:00", 6,
     ["2027-04-04T01:00:00+11:00", "2027-04-04T01:15:00+11:00", "2027-04-04T01:30:00+11:00",
      "2027-04-04T01:45:00+11:00", "2027-04-04T01:30:00+10:30", "2027-04-04T01:45:00+10:30"]),
    ("*/15 2 * * *", CHATHAM, "2027-09-25T12:00:00+12:45", 4,  # 02:45 is skipped
     ["2027-09-26T02:00:00+12:45", "2027-09-26T02:15:00+12:45", "2027-09-26T02:30:00+12:45",
      "2027-09-27T02:00:00+13:45"]),
    ("*/20 3 * * *", CHATHAM, "2027-04-03T12:00:00+13:45", 6,
     ["2027-04-04T03:00:00+13:45", "2027-04-04T03:20:00+13:45", "2027-04-04T03:40:00+13:45",
      "2027-04-04T03:00:00+12:45", "2027-04-04T03:20:00+12:45", "2027-04-04T03:40:00+12:45"]),
    # fixed-time jobs, unchanged: once, at the jump or at the first occurrence
    ("30 2 * * *", BERLIN, "2027-03-27T12:00:00+01:00", 2,
     ["2027-03-28T03:00:00+02:00", "2027-03-29T02:30:00+02:00"]),
    ("0,30 2 * * *", BERLIN, "2027-03-27T12:00:00+01:00", 2,   # cronie starts it twice then
     ["2027-03-28T03:00:00+02:00", "2027-03-29T02:00:00+02:00"]),
    ("30 2 * * *", BERLIN, "2027-10-30T12:00:00+02:00", 2,
     ["2027-10-31T02:30:00+02:00", "2027-11-01T02:30:00+01:00"]),
    ("0 3 * * *", CHATHAM, "2027-09-25T12:00:00+12:45", 2,
     ["2027-09-26T03:45:00+13:45", "2027-09-27T03:00:00+13:45"]),
    ("50 3 * * *", CHATHAM, "2027-04-04T03:10:00+12:45", 1,    # after the repeat: fires
     ["2027-04-04T03:50:00+12:45"]),
    ("15 * * * *", BERLIN, "2027-10-31T01:30:00+02:00", 3,
     ["2027-10-31T02:15:00+02:00", "2027-10-31T02:15:00+01:00", "2027-10-31T03:15:00+01:00"]),
])  # fmt: skip
def test_daylight_saving_rule(expr: str, zone: str, after: str, count: int,
                              expected: list[str]) -> None:
    assert fires(expr, zone, after, count) == expected


# The schema accepts what cronie accepts and means something by; the rest is refused with the fix.
@pytest.mark.parametrize(("expr", "reason"), [
    ("5/2 * * * *", "minute field '5/2' is not valid; a step needs a range: write 5-59/2"),
    ("50-10 * * * *", "minute range '50-10' runs backwards and would never fire; "
                      "write 50-59,0-10"),
    ("0 0 * * 5-1", "day-of-week range '5-1' runs backwards and would never fire; write 5-7,0-1"),
    ("0 0 * * mon-0/2", "day-of-week range 'mon-0/2' runs backwards"),
    ("0 0 L * *", "day-of-month field 'L' is not valid; use *, N, N-M, */S, N-M/S or a comma "
                  "list of them"),
    ("0 0 15W * *", "day-of-month field '15W' is not valid"),
    ("0 0 ? * *", "day-of-month field '?' is not valid"),
    ("0 0 * * 5#2", "day-of-week field '5#2' is not valid"),
    ("0 0 * * L5", "day-of-week field 'L5' is not valid"),
    ("R * * * *", "minute field 'R' is not valid"),
    ("*/mon * * * *", "minute field '*/mon' is not valid"),
    ("0 0 * * monday", "day-of-week field 'monday' is not valid"),
    ("0 0 31 2 *", "cron expression '0 0 31 2 *' never matches a real date"),
    ("0 0 30 2 */2", "cron expression '0 0 30 2 */2' never matches a real date"),
])  # fmt: skip
def test_refused_with_the_fix(expr: str, reason: str) -> None:
    error = cron_error(expr)
    assert error is not None and error.startswith(reason), error


@pytest.mark.parametrize("expr", [
    "5-5 * * * *", "10-10/5 * * * *", "0 0 * * fri-sun", "0 0 * * 5-0", "*,5 * * * *",
    "0 0 * JAN,mar *", "0 0 * * 0-7", "05 1 * * *", "0 0 29 2 *", "0 0 31 2 mon", "@annually",
])  # fmt: skip
def test_accepted(expr: str) -> None:
    assert cron_error(expr) is None
