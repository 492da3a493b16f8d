"""Issue 17's "Done when" under `runner up` on Redis with an every-2s schedule of a job that
takes a second: kill -9 of the worker, of its pool process, of beat and of the publisher, each
mid-run. `runner up` keeps running and starts the killed child again, firings resume by
themselves, every firing is run or recorded MISSED exactly once (tests/helpers/chaos.py),
no command completes twice, no run is left unfinished, every finished run is one commit on
the report branch."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from runner.desired import next_fires
from runner.runs import FINAL
from runner.store.redis import RedisStore
from tests.helpers.chaos import FAST, first_firing, pids, settled, slow_job, window_end
from tests.helpers.cluster import finished_since, status
from tests.helpers.procs import ancestors, children, cmdline, poll
from tests.helpers.repos import Commit
from tests.servers import runner_up, start_redis

ROLE = {"worker": "worker system-worker", "pool": "worker system-worker", "beat": " beat ",
        "publisher": " publish "}


def child(up: int, role: str) -> int | None:
    found = [p for p in children(up) if ROLE[role] in cmdline(p)]
    return found[0] if found else None


def pool_of(marker: str, worker: int) -> int | None:
    """The pool process running a command of `marker` now: its ancestor whose parent is
    `worker` (None when no command runs, or it ended meanwhile)."""
    for pid in pids(worker, marker):
        chain = [pid, *ancestors(pid)]
        if worker in chain[1:]:
            return chain[chain.index(worker) - 1]
    return None


def reported(repo: Path) -> Counter[str]:
    out = subprocess.run(["git", "-C", str(repo), "log", "reports",
                          "--format=%(trailers:key=Run-Id,valueonly)"],
                         capture_output=True, text=True)
    return Counter(line for line in out.stdout.split() if line)


@pytest.mark.parametrize("fault", ["worker", "pool", "beat", "publisher"])
def test_up_rides_out_a_killed_child(fault: str, demo_repo: Path, commit: Commit,
                                     tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    files, marker = slow_job(marks, attempts=1 if fault in ("worker", "pool") else 0)
    commit(files, "an every-2s schedule of a one-second job")
    server = start_redis(tmp_path / "redis", persist=True)
    env = {**os.environ, "REDIS_URL": server.url, "RUNNER_CACHE_DIR": str(tmp_path / "cache")}
    try:
        with runner_up(demo_repo, tmp_path / "up.log", env=env) as up:
            poll(lambda: len(finished_since(server.url, 0)) >= 2, 90, "scheduled runs")
            poll(lambda: child(up.pid, fault), 30, f"{fault} runs")
            target = child(up.pid, fault)
            assert target is not None
            poll(lambda: pids(up.pid, marker), 30, "a command mid-run")  # the kill lands mid-run
            if fault == "pool":
                target = poll(lambda: pool_of(marker, target), 30, "a pool process's command")
            os.kill(target, signal.SIGKILL)
            killed = time.time()
            first = poll(lambda: finished_since(server.url, killed), 60,
                         "a run created after the kill succeeds")[0]
            print(f"kill -9 of the {fault} -> first new run SUCCESS in {first - killed:.1f}s")
            poll(lambda: child(up.pid, fault) not in (None, target), 30, f"{fault} restarted")
            end = window_end(datetime.now(UTC)) + timedelta(seconds=4)  # past the recovery
            got = settled(server.url, first_firing(server.url), end, marks)
            print(f"kill -9 of the {fault}: {got}")
            assert up.poll() is None
            store = RedisStore(server.url)
            runs = {r.run_id: r for r in store.runs(job="quick", limit=10_000)}
            died = [r for r in runs.values() if "died" in str(r.error)]
            if fault in ("worker", "pool"):  # the run killed mid-command: retried once
                assert died and got.retries == len(died) and got.killed == len(died), got
                assert Counter(r.retry_of for r in runs.values()
                               if r.retry_of) == Counter(r.run_id for r in died)
            else:
                assert not died and got.retries == 0 and got.killed == 0, got
            ended = {i for i, r in runs.items() if r.state in FINAL}
            poll(lambda: ended <= set(reported(demo_repo)), 60, "every ended run reported")
            twice = [i for i, n in reported(demo_repo).items() if n > 1]
            assert not twice, twice
        text = (tmp_path / "up.log").read_text()
        assert "Traceback" not in text, text[text.find("Traceback") - 300:][:3000]
    finally:
        server.stop()


def test_up_reports_what_a_data_losing_redis_restart_lost(demo_repo: Path, commit: Commit,
                                                          tmp_path: Path) -> None:
    """Redis with no persistence stopped and started again empty: what it held is lost (run
    records, queued messages), and said: `runner status` and /api/health warn that the store
    was wiped. Every firing after the stop is run or recorded MISSED exactly once (beat
    writes back the schedule state it holds), and no command completes twice."""
    marks = tmp_path / "marks"
    files, _ = slow_job(marks)
    commit(files, "an every-2s schedule of a one-second job")
    server = start_redis(tmp_path / "redis")  # --save "": it comes back empty
    port = int(server.url.rsplit(":", 1)[1].split("/")[0])
    env = {**os.environ, "REDIS_URL": server.url, "RUNNER_CACHE_DIR": str(tmp_path / "cache")}
    log = tmp_path / "up.log"
    try:
        with runner_up(demo_repo, log, env=env) as up:
            api = int(poll(lambda: re.findall(r"api on 127\.0\.0\.1:(\d+)", log.read_text()),
                           30, "runner up started")[0])
            poll(lambda: len(finished_since(server.url, 0)) >= 2, 90, "scheduled runs")
            server.stop()
            stopped = datetime.now(UTC)
            poll(lambda: "beat: lost the store" in log.read_text(), 30, "beat saw the outage")
            server = start_redis(tmp_path / "redis", port)
            back = time.time()
            first = poll(lambda: finished_since(server.url, back), 60, "a run after the wipe")[0]
            print(f"data-losing restart: Redis back -> first new run SUCCESS in "
                  f"{first - back:.1f}s")
            end = window_end(datetime.now(UTC)) + timedelta(seconds=4)
            got = settled(server.url, next_fires(FAST, stopped, 1)[0], end, marks, since=back)
            print(f"data-losing restart: {got}")
            said = status(demo_repo, env)
            assert "warning: the store was wiped (noticed by " in said.stdout, said
            with urllib.request.urlopen(f"http://127.0.0.1:{api}/api/health", timeout=5) as r:
                assert json.load(r)["warning"].startswith("the store was wiped (noticed by ")
            assert up.poll() is None
        assert "Traceback" not in log.read_text()
    finally:
        server.stop()
