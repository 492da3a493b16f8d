"""Faults injected into a running system: a real redis-server stopped and started again on
the same port (`--save ""`: it comes back empty) under `runner up` with an every-2s schedule."""

from __future__ import annotations

import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from runner.errors import RunnerError
from runner.state import RedisStore
from tests.integration.test_celery import poll
from tests.servers import runner_up, start_redis

Commit = Callable[[dict[str, str | None], str], str]
OUTAGE = 10.0  # seconds Redis is away
FAST = {"schedules.d/fast.yaml": "schedules:\n  fast: {job: quick, every: 2s, overlap: allow}\n",
        "jobs.d/quick.yaml": "jobs:\n  quick: {queue: system, targets: [localhost], "
                             "steps: [{command: echo quick}]}\n",
        "schedules.d/ops.yaml": None}


def health(port: int) -> int | None:
    """The status code of GET /api/health, None when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def children(pid: int) -> set[int]:
    """The processes whose parent is `pid`."""
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                out.add(int(entry))
    return out


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def finished_since(url: str, since: float) -> list[float]:
    """When each SUCCESS run of `quick` created after `since` finished (Redis may be away)."""
    try:
        runs = RedisStore(url).runs(job="quick", limit=500)
    except RunnerError:  # Redis still starting: nothing yet
        return []
    return sorted(float(r["finished"]) for r in runs
                  if r.get("state") == "SUCCESS" and float(r.get("created", 0)) > since)


def test_up_rides_out_a_redis_outage(demo_repo: Path, commit: Commit, tmp_path: Path) -> None:
    commit(FAST, "an every-2s schedule")
    server = start_redis(tmp_path / "redis")
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
            back_at = time.monotonic() + OUTAGE
            while time.monotonic() < back_at:  # the outage itself: a timed deadline loop
                seen.add(health(api))
                time.sleep(0.2)
            assert 503 in seen, seen  # the reason is in the body (test_health_...)
            server = start_redis(tmp_path / "redis", port)
            back = time.time()

            first = poll(lambda: finished_since(server.url, back), 60,
                         "a scheduled run after Redis came back")[0]
            print(f"recovery: Redis back -> first new run SUCCESS in {first - back:.1f}s")
            poll(lambda: health(api) == 200, 30, "/api/health ok again")
            assert up.poll() is None
            assert all(alive(p) for p in before), "a child of runner up exited"
        text = log.read_text()
        assert "Traceback" not in text, text[-3000:]
        assert "lost the store" in text and "the store is back" in text
    finally:
        server.stop()
