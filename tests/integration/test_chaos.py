"""Faults injected into a running system: a real redis-server stopped and started again on
the same port (`--save ""`: it comes back empty) under `runner up` with an every-2s schedule;
an embedded state directory that fills up."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from runner.errors import StoreUnavailable
from runner.runs import RunRecord
from runner.store.redis import RedisStore
from tests.helpers.api import Api
from tests.helpers.chaos import FAST_FILES, first_firing, settled, slow_job, window_end
from tests.helpers.cluster import finished_since, gated_cluster, health, make_cluster, status
from tests.helpers.procs import alive, children, poll
from tests.helpers.repos import Commit
from tests.servers import runner_up, start_redis

OUTAGE = 10.0  # seconds Redis is away
TOLD = ("runner up", "beat", "publisher")  # each says once lost, once back (workers: Celery)


def test_up_rides_out_a_redis_outage(demo_repo: Path, commit: Commit, tmp_path: Path) -> None:
    """A 10 s outage of a Redis that keeps its data, a one-second job every 2 s: every firing
    is run or recorded MISSED exactly once, no command completes twice, every run ends."""
    marks = tmp_path / "marks"
    commit(slow_job(marks)[0], "an every-2s schedule of a one-second job")
    server = start_redis(tmp_path / "redis", persist=True)
    port = int(server.url.rsplit(":", 1)[1].split("/")[0])
    env = {**os.environ, "REDIS_URL": server.url, "RUNNER_CACHE_DIR": str(tmp_path / "cache")}
    log = tmp_path / "up.log"
    try:
        with runner_up(demo_repo, log, env=env) as up:
            api = int(poll(lambda: re.findall(r"api on 127\.0\.0\.1:(\d+)", log.read_text()),
                           30, "runner up started")[0])
            poll(lambda: health(api) == 200, 60, "/api/health ok")
            poll(lambda: len(finished_since(server.url, 0)) >= 2, 90, "scheduled runs")
            before = children(up.pid)
            assert len(before) >= 5  # reconciler, beat, api, two workers, publisher

            server.stop()
            seen: set[int | None] = set()
            reasons: list[str] = []
            back_at = time.monotonic() + OUTAGE
            while time.monotonic() < back_at:  # the outage itself: a timed deadline loop
                seen.add(health(api, reasons))
                time.sleep(0.2)
            assert 503 in seen, seen
            assert all(r.startswith("Redis is unavailable: ") for r in reasons), reasons
            said = status(demo_repo, env)
            assert said.returncode == 2 and "Traceback" not in said.stderr, said
            assert "cannot reach Redis" in said.stderr, said.stderr
            server = start_redis(tmp_path / "redis", port, persist=True)
            back = time.time()

            first = poll(lambda: finished_since(server.url, back), 60,
                         "a scheduled run after Redis came back")[0]
            print(f"recovery: Redis back -> first new run SUCCESS in {first - back:.1f}s")
            poll(lambda: health(api) == 200, 30, "/api/health ok again")
            poll(lambda: all(f"{who}: the store is back" in log.read_text() for who in TOLD),
                 30, "each process told Redis is back (its backoff is at most 5 s)")
            end = window_end(datetime.now(UTC)) + timedelta(seconds=4)  # past the recovery
            print(f"Redis outage: {settled(server.url, first_firing(server.url), end, marks)}")
            assert up.poll() is None
            gone = [p for p in before if not alive(p)]
            assert not gone, re.findall(r".*exited with status.*", log.read_text())
        text = log.read_text()
        assert "Traceback" not in text, text[text.find("Traceback") - 500:][:4000]
        for who in TOLD:
            assert text.count(f"{who}: lost the store") == 1, who
            assert text.count(f"{who}: the store is back") == 1, who
        assert text.count("events: lost Redis") <= 1
    finally:
        server.stop()


def test_a_full_state_directory_is_503_and_one_sentence(tmp_path: Path) -> None:
    """The embedded state directory on a real, tiny tmpfs (needs root, as .ci/run is), filled
    up and emptied again."""
    cluster = make_cluster(tmp_path, None)
    state = cluster.repo / ".runner" / "state"  # the store's directory
    state.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(state)], check=True)
    try:
        api = Api(cluster)
        try:
            with api.client(None) as anon:
                poll(lambda: anon.get("/api/health").status_code == 200, 30, "health ok")
                filler = state / "filler"
                with open(filler, "wb", buffering=0) as f, contextlib.suppress(OSError):
                    while True:  # until the disk is full
                        f.write(b"\0" * 65536)
                        f.flush()
                full = poll(lambda: (r := anon.get("/api/health")).status_code == 503 and r,
                            30, "health 503 on a full disk").json()
                assert "cannot be written" in full["error"] and str(state) in full["error"]
                said = status(cluster.repo, cluster.env)
                assert said.returncode == 2, said
                assert "Traceback" not in said.stderr
                assert said.stderr.startswith("error: the state directory")
                assert len(said.stderr.strip().splitlines()) == 1
                filler.unlink()
                poll(lambda: anon.get("/api/health").status_code == 200, 30, "health ok again")
        finally:
            api.stop()
    finally:
        subprocess.run(["umount", "-l", str(state)], check=True)


def test_beat_publisher_and_reconciler_ride_out_a_redis_restart(
        demo_repo: Path, commit: Commit, tmp_path: Path) -> None:
    """Each standalone, on Redis: still running after it, each says once that it lost the
    store and once that it is back, no traceback; beat fires again."""
    commit(FAST_FILES, "an every-2s schedule")
    server = start_redis(tmp_path / "redis")
    port = int(server.url.rsplit(":", 1)[1].split("/")[0])
    env = {**os.environ, "REDIS_URL": server.url, "RUNNER_CACHE_DIR": str(tmp_path / "cache")}
    repo = ["--repo", str(demo_repo)]
    commands = {"beat": ["beat", *repo], "publisher": ["publish", "--watch", *repo],
                "reconciler": ["reconcile", "--watch", *repo, "--interval", "2s"]}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, args in commands.items():
            with open(tmp_path / f"{name}.log", "wb") as out:
                procs[name] = subprocess.Popen([sys.executable, "-m", "runner", *args], env=env,
                                               stdout=out, stderr=out)
        store = RedisStore(server.url)
        poll(lambda: store.get("schedule:fast") and store.holder("publisher"), 60, "all up")
        server.stop()
        logs = {n: tmp_path / f"{n}.log" for n in commands}
        poll(lambda: all("lost the store" in p.read_text() for p in logs.values()), 30,
             "each process saw the outage")
        server = start_redis(tmp_path / "redis", port)  # empty: --save ""
        store = RedisStore(server.url)
        poll(lambda: all("the store is back" in p.read_text() for p in logs.values()), 30,
             "each process saw Redis back")
        poll(lambda: store.get("schedule:fast"), 30, "beat fires again")
        for name, proc in procs.items():
            assert proc.poll() is None, f"{name} exited"
            text = logs[name].read_text()
            assert "Traceback" not in text, text
            assert text.count("lost the store") == 1 and text.count("the store is back") == 1
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(30)
        server.stop()


def test_beat_stops_at_once_on_sigterm_in_a_long_pass(demo_repo: Path, commit: Commit,
                                                      tmp_path: Path) -> None:
    """A pass catching up a year of every-1s firings (minutes of work) ends on SIGTERM."""
    from runner.store.files import FileStore

    commit({**FAST_FILES, "schedules.d/fast.yaml": "schedules:\n  fast: {job: quick, every: 1s}\n"},
           "an every-1s schedule")
    store = FileStore(demo_repo / ".runner" / "state")
    year_ago = datetime.now(UTC) - timedelta(days=365)
    store.put("schedule:fast", {"last_fire": year_ago.isoformat()})
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["RUNNER_CACHE_DIR"] = str(tmp_path / "cache")
    with open(tmp_path / "beat.log", "wb") as out:
        beat = subprocess.Popen([sys.executable, "-m", "runner", "beat", "--repo",
                                 str(demo_repo)], env=env, stdout=out, stderr=out)
    try:
        poll(lambda: store.holder("beat"), 30, "beat holds its lock (its pass begins)")
        beat.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        beat.wait(10)
        assert time.monotonic() - sent < 1.0
        assert beat.returncode == 0
        assert "Traceback" not in (tmp_path / "beat.log").read_text()
    finally:
        if beat.poll() is None:
            beat.kill()
            beat.wait()


def test_a_store_on_a_stopped_redis_raises_runners_error_only(tmp_path: Path) -> None:
    """Every public method of the Redis store (but changes(), which waits for the server to
    come back) raises StoreUnavailable, never a redis-py error, when Redis is away."""
    server = start_redis(tmp_path / "redis")
    store = RedisStore(server.url)
    server.stop()
    calls: dict[str, Callable[[], object]] = {
        "ping": store.ping, "server": store.server, "get": lambda: store.get("k"),
        "put": lambda: store.put("k", {}), "put_many": lambda: store.put_many({"k": {}}),
        "put_new": lambda: store.put_new("k", {}), "entries": lambda: store.entries("worker:"),
        "run": lambda: store.run("r"), "runs": store.runs,
        "lock": lambda: store.lock("beat", "me", 1.0), "holder": lambda: store.holder("beat"),
        "save_run": lambda: store.save_run(RunRecord.from_json(
            {"run_id": "r", "state": "PENDING"})),
        "save_runs": lambda: store.save_runs([RunRecord.from_json(r) for r in
            [{"run_id": "r", "state": "PENDING"}]]),
        "update_run": lambda: store.update_run("r", {"state": "SUCCESS"}),
        "end_run": lambda: store.end_run("r", {"state": "FAILURE"}, ("STARTED",)),
        "withdraw": lambda: store.withdraw("r"),
        "begin_run": lambda: store.begin_run("r", "job", "w", time.time()),
        "mark_received": lambda: store.mark_received([("r", time.time())]),
        "request_cancel": lambda: store.request_cancel("r", "me"),
        "cancel_requested": lambda: store.cancel_requested("r"),
        "to_publish": lambda: store.to_publish(10), "published": lambda: store.published(["r"]),
        "forget": lambda: store.forget(time.time()), "runs_page": store.runs_page,
        "tally": lambda: store.tally("t", {"n": 1}, {}), "tallies": lambda: store.tallies("t"),
        "delete": lambda: store.delete("k"), "to_notify": lambda: store.to_notify("r", 1.0),
        "take_slots": lambda: store.take_slots([("l", 1)], "r", "w", 6.0),
        "free_slots": lambda: store.free_slots(["l"], "r"), "slots": store.slots}
    # runs_stamp asks the server nothing (None on Redis)
    public = {n for n in vars(RedisStore) if not n.startswith("_")} - {"changes", "runs_stamp"}
    assert set(calls) == public  # a method added to the store is added here
    for call in calls.values():
        with pytest.raises(StoreUnavailable, match="Redis is unavailable"):
            call()


def test_a_run_that_ends_while_redis_is_away_saves_its_state_when_it_is_back(
        tmp_path: Path) -> None:
    """Redis with an append-only file (a restart keeps its data): the run's record is there
    when it comes back, and the worker completes it."""
    server, port, cluster, go = gated_cluster(tmp_path)
    try:
        worker = cluster.worker("side")
        run_id = cluster.enqueue("gated")
        poll(lambda: cluster.state(run_id) == "STARTED", 30, "the run started")
        server.stop()
        go.touch()  # the command ends while Redis is away
        poll(lambda: b"lost the store" in cluster._log(worker), 30, "the worker saw it")
        server = start_redis(tmp_path / "redis", port, persist=True)
        cluster.store = RedisStore(server.url)
        record = cluster.final(run_id, 30)
        assert record.state == "SUCCESS", record
        assert "finished" in str(record.result)
        assert worker.poll() is None
        assert b"Traceback" not in cluster._log(worker)
    finally:
        cluster.stop()
        server.stop()
