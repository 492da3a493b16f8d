"""Beat's firing hand-off is an outbox a restart completes, and beat writes back what a wiped
store lost: in-process beats with an injected clock, on the embedded store and a real Redis."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import runner.celery.beat
from runner.celery.app import create_app, queue_length
from runner.celery.beat import Beat
from runner.errors import StoreUnavailable
from runner.settings import Settings
from runner.system import System
from tests.helpers.procs import poll
from tests.helpers.repos import copy_demo
from tests.servers import Redis, redis_port, start_redis

FIVE = "schedules:\n  five: {job: health-check, every: 5m, overlap: allow}\n"


class Killed(BaseException):
    """The beat process dies here (nothing on the way catches it)."""


def die(*_: Any) -> None:
    raise Killed


def dies_on_second(put: Callable[[dict[str, dict[str, Any]]], None],
                   death: Callable[..., None] = die
                   ) -> Callable[[dict[str, dict[str, Any]]], None]:
    calls = []

    def second(states: dict[str, dict[str, Any]]) -> None:
        calls.append(states)
        if len(calls) == 2:
            death()
        put(states)

    return second


def system_on(tmp_path: Path, url: str) -> System:
    repo = tmp_path / "config"
    if not repo.exists():
        copy_demo(repo)
        (repo / "schedules.d" / "ops.yaml").write_text(FIVE)
    return System(Settings(redis_url=url), repo, repo / ".runner")


def fired(system: System) -> list[tuple[str, str]]:
    return sorted((r.scheduled_for, r.state) for r in system.store.runs(limit=100)
                  if r.schedule == "five")


@pytest.mark.parametrize("where", ["embedded", "redis"])
def test_a_beat_killed_mid_hand_off_is_completed_once_by_the_next(
        where: str, tmp_path: Path, request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch) -> None:
    url = ""
    if where == "redis":
        server: Redis = request.getfixturevalue("redis_server")
        import redis

        redis.Redis.from_url(server.url).flushall()
        url = server.url
    now = [datetime(2026, 11, 25, 12, 1, tzinfo=UTC)]

    def beat() -> Beat:  # a new beat process over the same store
        system = system_on(tmp_path, url)
        return Beat(system, create_app(system), clock=lambda: now[0])

    first = beat()
    assert first.tick()
    system = first.system
    queue = system.config().jobs["health-check"].queue
    real_send = runner.celery.beat.send
    # where each beat dies (its writes are batched: save_runs, _put): before the run's
    # record, before its message, after its message
    for n, (where_, minute) in enumerate([("save_run", "12:05"), ("send", "12:10"),
                                          ("clear", "12:15")]):
        dying = beat()
        poll(dying.tick, 30, "the beat takes the lock (the last one's lease ran out)")
        now[0] = datetime.fromisoformat(f"2026-11-25T{minute}:01+00:00")
        if where_ == "save_run":
            monkeypatch.setattr(dying.store, "save_runs", die)
        elif where_ == "send":
            monkeypatch.setattr(runner.celery.beat, "send", die)
        else:  # the message is sent; the write that clears the outbox never happens
            monkeypatch.setattr(dying, "_put", dies_on_second(dying._put))
        with pytest.raises(Killed):
            dying.tick()
        monkeypatch.undo()
        assert runner.celery.beat.send is real_send
        assert [f for f in fired(system) if f[0].endswith(f"{minute}:00+00:00")] == (
            [] if where_ == "save_run" else [(f"2026-11-25T{minute}:00+00:00", "PENDING")])
        before = queue_length(dying.app, queue)
        poll(beat().tick, 30, "the next beat takes the lock")
        runs = fired(system)
        assert runs.count((f"2026-11-25T{minute}:00+00:00", "PENDING")) == 1, runs
        assert len(runs) == n + 1  # 12:05 ... this one: one run each, none lost
        sent = queue_length(dying.app, queue) - before
        assert sent == 1, f"{where_}: {sent} message(s) sent"  # after send: a duplicate
        assert "outbox" not in (system.store.get("schedule:five") or {})


def test_beat_writes_back_what_a_wiped_redis_lost(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """A real redis-server restarted with no persistence: every firing since is run or
    recorded MISSED, none handled before runs again (the one of the last seconds is recorded
    FAILURE, retried as its job allows); status and health say it."""
    from fastapi.testclient import TestClient

    from runner.api import Auth, create_api

    server = start_redis(tmp_path / "redis")
    port = int(server.url.rsplit(":", 1)[1].split("/")[0])
    try:
        system = system_on(tmp_path, server.url)
        now = [datetime(2026, 11, 25, 12, 1, tzinfo=UTC)]
        beat = Beat(system, create_app(system), clock=lambda: now[0])
        beat.tick()
        now[0] = datetime(2026, 11, 25, 12, 5, 1, tzinfo=UTC)
        beat.tick()
        assert fired(system) == [("2026-11-25T12:05:00+00:00", "PENDING")]
        server.stop()
        server = start_redis(tmp_path / "redis", port)  # empty
        with caplog.at_level(logging.WARNING, "runner.beat"):
            now[0] = datetime(2026, 11, 25, 12, 5, 20, tzinfo=UTC)  # 12:05 is still due
            beat.looked = -1e9  # a generation check is due
            beat.tick()
            lost = [("2026-11-25T12:05:00+00:00", "FAILURE"),  # not run again as it is
                    ("2026-11-25T12:05:00+00:00", "PENDING")]  # its retry (attempts: 2)
            assert fired(system) == lost
            now[0] = datetime(2026, 11, 25, 12, 20, 2, tzinfo=UTC)  # 12:10, 12:15 late
            beat.looked = -1e9
            beat.tick()
        assert fired(system) == [*lost, ("2026-11-25T12:15:00+00:00", "MISSED"),
                                 ("2026-11-25T12:20:00+00:00", "PENDING")]
        missed = next(r for r in system.store.runs(limit=10) if r.state == "MISSED")
        assert missed.error.startswith("2 firing(s) of schedule five missed, "
                                       "2026-11-25T12:10:00+00:00 to 2026-11-25T12:15:00")
        said = [r.getMessage() for r in caplog.records if "was wiped" in r.getMessage()]
        assert len(said) == 1, said
        env = {**os.environ, "REDIS_URL": server.url,
               "RUNNER_CACHE_DIR": str(tmp_path / "cache")}
        status = subprocess.run([sys.executable, "-m", "runner", "status", "--repo",
                                 str(system.repo)], env=env, capture_output=True, text=True,
                                timeout=60)
        assert status.returncode == 0, status.stderr
        assert "warning: the store was wiped (noticed by beat at " in status.stdout
        with TestClient(create_api(system, Auth())) as client:
            health = client.get("/api/health")
        assert health.status_code == 200
        assert health.json()["warning"].startswith("the store was wiped (noticed by beat")
    finally:
        server.stop()


def test_beat_records_a_firing_whose_record_a_restart_lost(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Redis restarted from a snapshot taken before a firing (as a failover or an AOF written
    every second loses the last moments): the firing's run is recorded FAILURE with the
    reason, once, and not run again; the schedule's state is written back."""
    import redis

    server = start_redis(tmp_path / "redis")
    port = redis_port(server.url)
    try:
        system = system_on(tmp_path, server.url)
        now = [datetime(2026, 11, 25, 12, 1, tzinfo=UTC)]
        beat = Beat(system, create_app(system), clock=lambda: now[0])
        beat.tick()
        redis.Redis.from_url(server.url).save()  # what the restart comes back with
        now[0] = datetime(2026, 11, 25, 12, 5, 1, tzinfo=UTC)
        beat.tick()
        assert fired(system) == [("2026-11-25T12:05:00+00:00", "PENDING")]
        server.stop()
        server = start_redis(tmp_path / "redis", port)  # loads the snapshot
        assert fired(system) == []
        with caplog.at_level(logging.WARNING, "runner.beat"):
            beat.looked = -1e9  # a look at the store is due
            beat.tick()
        lost = [("2026-11-25T12:05:00+00:00", "FAILURE"),  # not run again as it is
                ("2026-11-25T12:05:00+00:00", "PENDING")]  # its retry (attempts: 2)
        assert fired(system) == lost
        failed = next(r for r in system.store.runs(limit=10) if r.state == "FAILURE")
        assert "the store lost this run's record in a Redis failover" in failed.error
        state = system.store.get("schedule:five") or {}
        assert state.get("last_fire") == "2026-11-25T12:05:00+00:00"
        said = [r.getMessage() for r in caplog.records]
        assert not any("was wiped" in m for m in said), said
        assert any("wrote again the PENDING record" in m for m in said), said
        now[0] = datetime(2026, 11, 25, 12, 10, 1, tzinfo=UTC)
        beat.looked = -1e9
        beat.tick()  # the next firing as usual, the lost one not again
        assert fired(system) == [*lost, ("2026-11-25T12:10:00+00:00", "PENDING")]
    finally:
        server.stop()


def unavailable(*_: Any) -> None:
    raise StoreUnavailable("Redis is unavailable: connection refused (the test's)")


def test_a_store_failure_mid_pass_loses_no_firing_and_runs_none_twice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same beat, the store failing once at each step of a firing (reading the
    suspensions, marking it handled, saving its record, sending it, clearing its outbox):
    at the next tick, each firing has exactly one run and one message."""
    system = system_on(tmp_path, "")
    now = [datetime(2026, 11, 25, 12, 1, tzinfo=UTC)]
    beat = Beat(system, create_app(system), clock=lambda: now[0])
    assert beat.tick()
    queue = system.config().jobs["health-check"].queue
    steps = [("get", "12:05"), ("put_many", "12:10"), ("save_runs", "12:15"),
             ("send", "12:20"), ("clear", "12:25")]
    for n, (step, minute) in enumerate(steps):
        now[0] = datetime.fromisoformat(f"2026-11-25T{minute}:01+00:00")
        if step == "send":
            monkeypatch.setattr(runner.celery.beat, "send", unavailable)
        elif step == "clear":  # the second write of the pass: the outbox cleared
            monkeypatch.setattr(beat, "_put", dies_on_second(beat._put, unavailable))
        else:
            monkeypatch.setattr(beat.store, step, unavailable)
        before = queue_length(beat.app, queue)
        with pytest.raises(StoreUnavailable):
            beat.tick()
        monkeypatch.undo()
        beat.tick()  # the store is back
        runs = fired(system)
        assert runs.count((f"2026-11-25T{minute}:00+00:00", "PENDING")) == 1, (step, runs)
        assert len(runs) == n + 1, (step, runs)  # none lost, none twice
        assert queue_length(beat.app, queue) - before == 1, step
        assert "outbox" not in (system.store.get("schedule:five") or {}), step
