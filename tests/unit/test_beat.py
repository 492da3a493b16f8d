"""Beat's decisions with an injected clock: which firing runs, which are missed."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from runner.celery.beat import GRACE, decide
from runner.config import model

BERLIN = ZoneInfo("Europe/Berlin")


def sched(**v: object) -> model.Schedule:
    return model.schedule("s", {"job": "j", **v})


def t(text: str) -> datetime:
    return datetime.fromisoformat(text)


def walk(s: model.Schedule, start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    """Ticks the clock from start to end like a running beat; returns what it fired."""
    fired, after, now = [], start, start
    while now <= end:
        d = decide(s, after, now)
        if d is not None:
            assert d.missed == 0, (now, d)
            assert d.run is not None
            fired.append(d.run)
            after = d.last
        now += step
    return fired


@pytest.mark.parametrize(("day", "expected"), [
    # spring forward: 02:30 does not exist; fires once at 03:00 CEST
    ("2026-03-29", ["2026-03-29T03:00:00+02:00"]),
    # fall back: 02:30 happens twice; fires once, at the first (CEST)
    ("2026-10-25", ["2026-10-25T02:30:00+02:00"]),
    ("2026-06-01", ["2026-06-01T02:30:00+02:00"]),
])
def test_berlin_cron_fires_once_on_dst_days(day: str, expected: list[str]) -> None:
    s = sched(cron="30 2 * * *", timezone="Europe/Berlin")
    start = datetime.fromisoformat(f"{day}T00:00:00").replace(tzinfo=BERLIN)
    fired = walk(s, start, start + timedelta(hours=6), timedelta(minutes=1))
    assert [f.isoformat() for f in fired] == expected


def test_wildcard_hour_fires_both_repeated_hours() -> None:
    s = sched(cron="15 * * * *", timezone="Europe/Berlin")
    start = t("2026-10-25T01:00:00+02:00")
    fired = walk(s, start, start + timedelta(hours=3, minutes=30), timedelta(minutes=5))
    assert [f.isoformat() for f in fired] == ["2026-10-25T01:15:00+02:00",
                                              "2026-10-25T02:15:00+02:00",
                                              "2026-10-25T02:15:00+01:00",
                                              "2026-10-25T03:15:00+01:00"]


def test_nothing_due() -> None:
    assert decide(sched(every="5m"), t("2026-01-01T00:00:00+00:00"),
                  t("2026-01-01T00:04:59+00:00")) is None


def test_a_late_tick_within_grace_still_runs() -> None:
    d = decide(sched(every="5m"), t("2026-01-01T00:00:00+00:00"),
               t("2026-01-01T00:05:00+00:00") + timedelta(seconds=GRACE - 1))
    assert d is not None and d.run == t("2026-01-01T00:05:00+00:00") and d.missed == 0


@pytest.mark.parametrize(("deadline", "runs", "missed"), [
    (None, None, 12),                                  # down an hour, no deadline: all missed
    ("10m", "2026-01-01T01:00:00+00:00", 11),          # the latest within 10m runs once
    ("1m", None, 12),                                  # the latest is 3 minutes old
])
def test_downtime_never_bursts(deadline: str | None, runs: str | None, missed: int) -> None:
    extra = {"starting_deadline": deadline} if deadline else {}
    d = decide(sched(every="5m", **extra), t("2026-01-01T00:00:00+00:00"),
               t("2026-01-01T01:03:00+00:00"))
    assert d is not None
    assert (d.run.isoformat() if d.run else None, d.missed) == (runs, missed)
    assert d.last == t("2026-01-01T01:00:00+00:00")


def test_at_fires_once() -> None:
    s = sched(at="2026-12-01T10:00:00+01:00")
    d = decide(s, t("2026-12-01T08:00:00+00:00"), t("2026-12-01T09:00:10+00:00"))
    assert d is not None and d.run == t("2026-12-01T10:00:00+01:00")
    assert decide(s, d.last, t("2027-01-01T00:00:00+00:00")) is None
