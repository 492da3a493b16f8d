"""Runner's beat as Celery's beat service: `celery -A runner.app beat -S
runner.celery.scheduler:Scheduler`, a real process on a real Redis."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import redis

from runner.store.redis import RedisStore
from tests.helpers.procs import poll
from tests.helpers.repos import copy_demo
from tests.servers import Redis


def test_celery_beat_with_runners_scheduler_fires_every_2s(redis_server: Redis,
                                                          tmp_path: Path) -> None:
    redis.Redis.from_url(redis_server.url).flushall()
    repo = copy_demo(tmp_path / "config")
    (repo / "schedules.d" / "ops.yaml").write_text(
        "schedules:\n  fast: {job: health-check, every: 2s, overlap: allow}\n")
    env = {**os.environ, "RUNNER_REPO": str(repo), "REDIS_URL": redis_server.url,
           "RUNNER_CACHE_DIR": str(tmp_path / "cache")}
    store = RedisStore(redis_server.url)
    with open(tmp_path / "beat.log", "wb") as out:
        beat = subprocess.Popen([sys.executable, "-m", "celery", "-A", "runner.app", "beat",
                                 "-S", "runner.celery.scheduler:Scheduler", "-l", "info"], env=env,
                                stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        runs = poll(lambda: (r := store.runs("health-check", 10)) and len(r) >= 3 and r, 30,
                    "celery beat fires the every-2s schedule three times")
        fires = sorted(datetime.fromisoformat(r.scheduled_for).timestamp() for r in runs)
        assert all(b - a == 2 for a, b in itertools.pairwise(fires)), fires
        assert all(float(r.created) - datetime.fromisoformat(
            r.scheduled_for).timestamp() < 1 for r in runs), runs  # on time
        assert store.holder("beat")  # the one active beat's lock
        beat.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        beat.wait(10)
        assert time.monotonic() - sent < 1.0 and beat.returncode == 0
        log = (tmp_path / "beat.log").read_text()
        assert "scheduler -> runner.celery.scheduler.Scheduler" in log, log
        assert "Traceback" not in log, log
        assert "schedule fast fired" in log  # runner's log lines, through Celery's logging
    finally:
        if beat.poll() is None:
            beat.kill()
            beat.wait()
