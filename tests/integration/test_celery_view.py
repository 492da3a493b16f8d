"""Celery's own tools see runs as they are: real Flower on Redis lists each run by its job's
name with the run's state, and `celery -A runner.app` (inspect, control, events) reaches the
workers on Redis and on the embedded default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from runner.runs import RunRecord
from runner.store import open_store
from tests.helpers.cluster import Cluster
from tests.helpers.procs import poll
from tests.servers import Redis, free_port, runner_up, wait_port

JOBS = """\
jobs:
  good: {queue: system, targets: [localhost], steps: [{command: "true"}]}
  bad: {queue: system, targets: [localhost], steps: [{command: "echo nope >&2; exit 3"}]}
  long: {queue: system, targets: [localhost], steps: [{command: "sleep 46.7"}]}
"""
ONE_WORKER = "queues: {system: {}, execution: {}}\nworkers: {w: {queues: [system, execution]}}\n"


def celery(*args: str, env: dict[str, str], cwd: Path,
           timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "celery", "-A", "runner.app", *args],
                          env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_flower_on_redis_lists_each_run_by_job_with_its_state(
        demo_repo: Path, commit: Callable[..., str], redis_server: Redis,
        tmp_path: Path) -> None:
    commit({"jobs.d/view.yaml": JOBS, "queues.yaml": ONE_WORKER}, "jobs seen in Flower")
    redis.Redis.from_url(redis_server.url).flushall()
    env = {**os.environ, "REDIS_URL": redis_server.url, "RUNNER_REPO": str(demo_repo),
           "RUNNER_CACHE_DIR": str(tmp_path / "cache"), "FLOWER_UNAUTHENTICATED_API": "1"}
    store = open_store(redis_server.url, demo_repo / ".runner")
    up_log, port = tmp_path / "up.log", free_port()

    def runner(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "runner", *args], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def tasks() -> dict[str, dict[str, Any]]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/tasks", timeout=5) as r:
            return dict(json.load(r))

    with runner_up(demo_repo, up_log, env=env), \
            open(tmp_path / "flower.log", "wb") as log:
        flower = subprocess.Popen([sys.executable, "-m", "celery", "-A", "runner.app", "flower",
                                   "--address=127.0.0.1", f"--port={port}"], env=env,
                                  cwd=tmp_path, stdout=log, stderr=log)
        try:
            wait_port(port, flower, 60)
            # Flower turns task events on (every 5 s); the worker says when it did
            poll(lambda: b"Events of group {task} enabled" in up_log.read_bytes(), 60,
                 "the worker sends task events")
            good, bad, long = (runner("run", job, "--enqueue") for job in ("good", "bad", "long"))
            poll(lambda: (store.run(long) or RunRecord(long)).state == "STARTED", 30, "long starts")
            runner("cancel", long)
            want = {good: ("good", "SUCCESS"), bad: ("bad", "FAILURE"),
                    long: ("long", "REVOKED")}
            seen = poll(lambda: (t := tasks()) and all(
                (t.get(i) or {}).get("name") == job and t[i]["state"] == state
                for i, (job, state) in want.items()) and t, 60, "Flower shows the runs")
        finally:
            flower.terminate()
            flower.wait(30)
    assert "localhost: step 'command 1' exited with status 3" in seen[bad]["exception"]
    r = redis.Redis.from_url(redis_server.url)  # acknowledged, not held or queued again
    messages = r.hvals("unacked") + [m for k in r.scan_iter("system*")
                                     if r.type(k) == b"list" for m in r.lrange(k, 0, -1)]
    assert [m for m in messages if bad.encode() in m or long.encode() in m] == []
    assert (store.run(bad) or RunRecord(bad)).state == "FAILURE"
    assert (store.run(long) or RunRecord(long)).state == "REVOKED"


def test_the_celery_cli_reaches_the_workers(cluster: Cluster, tmp_path: Path) -> None:
    cluster.worker("side")
    # the repository: the current directory, or RUNNER_REPO
    pong = celery("inspect", "ping", "--json", env=cluster.env, cwd=cluster.repo)
    assert pong.returncode == 0, pong.stderr
    (host, answer), = json.loads(pong.stdout).items()
    assert host.startswith("side-") and answer == {"ok": "pong"}
    env = {**cluster.env, "RUNNER_REPO": str(cluster.repo)}
    dump = tmp_path / "events.txt"
    with open(dump, "wb") as out:
        events = subprocess.Popen([sys.executable, "-m", "celery", "-A", "runner.app", "events",
                                   "--dump"], env=env, cwd=tmp_path, stdout=out,
                                  stderr=subprocess.DEVNULL)
    try:
        poll(lambda: b"heartbeat" in dump.read_bytes(), 30, "celery events receives")
        on = celery("control", "enable_events", env=env, cwd=tmp_path)
        assert on.returncode == 0 and "task events enabled" in on.stdout, on.stderr
        add = celery("control", "add_consumer", "low", "-d", host, env=env, cwd=tmp_path)
        assert add.returncode == 0 and "add consumer low" in add.stdout, add.stderr
        added = time.time()  # the worker reads its --repo again (a file touched): low stays
        os.utime(cluster.repo / "queues.yaml")
        poll(lambda: (cluster.store.get(f"worker:{host}") or {}).get("matched_at", 0) > added,
             30, "the worker reads its configuration again")
        queues = celery("inspect", "active_queues", "--json", env=env, cwd=tmp_path)
        assert sorted(q["name"] for q in json.loads(queues.stdout)[host]) == ["low", "other"]
        ok, failed = cluster.enqueue("quick-low"), cluster.enqueue("fails")
        poll(lambda: f"task succeeded: quick-low({ok})" in dump.read_text(), 30,
             "the success is an event, by job name")
        text = poll(lambda: (t := dump.read_text()) and f"task failed: fails({failed})" in t
                    and t, 30, "the failure is an event, by job name")
        assert "exception=RunFailed(\"here: step 'command 1' exited with status 3\")" in text
    finally:
        events.terminate()
        events.wait(30)


def test_the_celery_app_of_a_directory_without_configuration_is_one_line(
        tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "RUNNER_REPO")}
    done = celery("inspect", "ping", env=env, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: runner.app: {tmp_path}: no runner configuration")
    assert done.stderr.rstrip().endswith("; set RUNNER_REPO to the configuration repository "
                                         "(default: the current directory)")
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
