"""Beat at 10,000 schedules with an injected clock, on a real Redis: the DST, overlap, deadline
and takeover contract holds, in bounded time; one changed schedule among 100,000 takes effect
within a second, without recomputing the others."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis

import runner.celery.beat
from runner.celery.app import create_app
from runner.celery.beat import GRACE, Beat
from runner.config import model
from runner.config.model import ConfigSet, Schedule
from runner.desired import next_fires
from runner.settings import Settings
from runner.system import System
from tests.helpers.procs import poll
from tests.helpers.repos import copy_demo
from tests.servers import Redis

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney",
         "America/Los_Angeles", "Asia/Kolkata", "America/Sao_Paulo"]
STEADY = ["UTC", "Asia/Tokyo", "Asia/Kolkata", "America/Sao_Paulo"]  # no DST on the day
START = datetime(2026, 10, 24, 22, 0, 1, tzinfo=UTC)  # 00:00 CEST; Berlin falls back at 01:00Z
MASS = datetime(2026, 10, 25, 1, 0, tzinfo=UTC)  # 2,000 schedules due at once
GAP = (datetime(2026, 10, 25, 2, 20, 1, tzinfo=UTC), datetime(2026, 10, 25, 2, 45, 1, tzinfo=UTC))
END = datetime(2026, 10, 25, 3, 0, 1, tzinfo=UTC)


class Killed(BaseException):
    """The beat process dies here."""


def sched(name: str, **v: Any) -> Schedule:
    return model.schedule(name, {"job": "health-check", **v})


def system_with(tmp_path: Path, url: str, schedules: dict[str, Schedule]
                ) -> tuple[System, list[ConfigSet]]:
    """A system whose configuration is current[0]: the demo's, with `schedules`."""
    repo = copy_demo(tmp_path / "config")
    system = System(Settings(redis_url=url), repo, repo / ".runner")
    current = [replace(system.config(), schedules=schedules)]
    system.config = lambda: current[0]  # type: ignore[method-assign]
    return system, current


def fillers(rng: random.Random) -> dict[str, Schedule]:
    out = {}
    for i in range(8000):  # daily, at random wall times of 8 zones
        out[f"d{i}"] = sched(f"d{i}", cron=f"{rng.randrange(60)} {rng.randrange(24)} * * *",
                             timezone=ZONES[i % len(ZONES)])
    for i in range(2000):  # the same UTC minute, written in each zone's wall time
        tz = STEADY[i % len(STEADY)]
        local = MASS.astimezone(ZoneInfo(tz))
        out[f"m{i}"] = sched(f"m{i}", cron=f"{local.minute} {local.hour} * * *", timezone=tz)
    return out


def expected(s: Schedule) -> dict[str, str]:
    """Each firing of a filler in the window: PENDING, or MISSED when it fell in the gap
    more than GRACE before beat came back."""
    out, cursor = {}, START
    while (fires := next_fires(s, cursor, 1)) and fires[0] <= END:
        f = cursor = fires[0]
        late = GAP[0] < f <= GAP[1] and (GAP[1] - f).total_seconds() > GRACE
        out[f.isoformat()] = "MISSED" if late else "PENDING"
    return out


def test_the_contract_holds_at_10000_schedules(redis_server: Redis, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    redis.Redis.from_url(redis_server.url).flushall()
    schedules = fillers(random.Random(18))
    schedules |= {
        "dst": sched("dst", cron="30 2 * * *", timezone="Europe/Berlin", overlap="allow"),
        "wild": sched("wild", cron="15 * * * *", timezone="Europe/Berlin", overlap="allow"),
        "forbid": sched("forbid", every="5m"),
        "deadline": sched("deadline", every="10m", starting_deadline="1m", overlap="allow")}
    system, _ = system_with(tmp_path, redis_server.url, schedules)
    now = [START]
    app = create_app(system)
    beat = Beat(system, app, clock=lambda: now[0])
    real_send, sent = runner.celery.beat.send, [0]

    def dies_on_the_700th(*args: Any) -> None:
        sent[0] += 1
        if sent[0] == 700:
            raise Killed
        real_send(*args)

    began = time.monotonic()
    while now[0] <= END:
        if now[0] == MASS + timedelta(seconds=1):  # dies mid-hand-off of 2,000 firings
            monkeypatch.setattr(runner.celery.beat, "send", dies_on_the_700th)
            with pytest.raises(Killed):
                beat.tick()
            monkeypatch.undo()
            redis.Redis.from_url(redis_server.url).delete("runner:lock:beat")  # lease ran out
            beat = Beat(system, app, clock=lambda: now[0])  # the standby takes over
        assert beat.tick()
        now[0] = GAP[1] if now[0] == GAP[0] else now[0] + timedelta(minutes=1)
    took = time.monotonic() - began
    assert took < 20, f"{took:.1f}s"

    records: dict[str, list[tuple[str, str]]] = {}
    for r in system.store.runs(limit=100_000):
        records.setdefault(r.schedule, []).append((r.scheduled_for, r.state))
    for name, s in schedules.items():  # every firing once: run, or missed in the gap
        if name[1:].isdigit():
            assert sorted(records.get(name, [])) == sorted(expected(s).items()), name
    assert sum(len(v) for k, v in records.items() if k[0] == "m" and k[1:].isdigit()) == 2000
    # Vixie DST: a fixed time fires once, at the first 02:30; a wildcard in both 02:15
    assert records["dst"] == [("2026-10-25T02:30:00+02:00", "PENDING")]
    assert sorted(records["wild"]) == [
        ("2026-10-25T00:15:00+02:00", "PENDING"), ("2026-10-25T01:15:00+02:00", "PENDING"),
        ("2026-10-25T02:15:00+01:00", "PENDING"), ("2026-10-25T02:15:00+02:00", "PENDING"),
        ("2026-10-25T03:15:00+01:00", "PENDING")]
    # overlap forbid: the first run never ends (no worker), each later firing is SKIPPED
    states = [st for _, st in sorted(records["forbid"])]
    assert states[0] == "PENDING" and set(states[1:]) == {"SKIPPED", "MISSED"}
    assert states.count("MISSED") == 1 and len(states) == 60 - 4 + 1
    # starting_deadline 1m: 02:30 and 02:40 fell in the gap, too late: one MISSED, no run
    deadline = sorted(records["deadline"])
    assert [f for f, st in deadline if st == "MISSED"] == ["2026-10-25T02:40:00+00:00"]
    assert len(deadline) == 30 - 2 + 1


def test_one_changed_schedule_among_100000_fires_within_a_second(
        redis_server: Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    redis.Redis.from_url(redis_server.url).flushall()
    rng = random.Random(1)
    schedules = {f"d{i}": sched(f"d{i}", cron=f"{rng.randrange(60)} {rng.randrange(24)} 1 1 *",
                                timezone=ZONES[i % len(ZONES)]) for i in range(100_000)}
    system, current = system_with(tmp_path, redis_server.url, schedules)
    beat = Beat(system, create_app(system))
    stop = threading.Event()
    thread = threading.Thread(target=beat.run, args=(stop,), daemon=True)
    thread.start()
    try:
        poll(lambda: beat.active and beat.config is current[0], 60, "beat planned them all")
        computed = []
        real = runner.celery.beat.next_fires

        def counted(s: Schedule, after: datetime, count: int) -> list[datetime]:
            computed.append(s.name)
            return real(s, after, count)

        monkeypatch.setattr(runner.celery.beat, "next_fires", counted)
        changed = sched("d42", every="1s")
        applied = time.monotonic()
        current[0] = replace(current[0], schedules={**schedules, "d42": changed})
        poll(lambda: [r for r in system.store.runs(limit=5) if r.schedule == "d42"], 10,
             "the changed schedule fires")
        took = time.monotonic() - applied
        assert took < 1.5, f"{took:.2f}s"
        assert set(computed) == {"d42"}  # the 99,999 others were not recomputed
        # none MISSED (a second firing a second later is SKIPPED: the first is still queued)
        assert {r.state for r in system.store.runs(limit=5)} <= {"PENDING", "SKIPPED"}
    finally:
        stop.set()
        thread.join(5)
