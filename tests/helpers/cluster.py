"""Runner's processes for real on a configuration of their own: a Cluster of workers, beat and
`runner up` subprocesses on Redis or on the embedded default, and what tests read back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from runner.errors import RunnerError
from runner.runs import ACTIVE, RunRecord
from runner.store import Store, open_store
from runner.store.files import FileStore
from runner.store.redis import RedisStore
from tests.helpers.procs import poll
from tests.helpers.repos import small_repo
from tests.servers import Redis, start_redis

QUEUES = """\
queues:
  high: {priority: 9}
  low: {priority: 1}
  other: {}
workers:
  busy: {queues: [low, high], concurrency: 1}
  side: {queues: [other], concurrency: 2}
"""
JOBS = """\
jobs:
  quick-high: {queue: high, targets: [here], steps: [{command: echo high}]}
  quick-low: {queue: low, targets: [here], steps: [{command: echo low}]}
  side-job: {queue: other, targets: [here], steps: [{command: echo side}]}
  slow: {queue: other, targets: [here], steps: [{command: sleep 47.3}]}
  fails: {queue: other, targets: [here], steps: [{command: exit 3}]}
  nap: {queue: other, targets: [here], steps: [{command: sleep 4}]}
"""
HELLO = "jobs:\n  hello: {queue: q, targets: [here], steps: [{command: echo hello}]}\n"


class Cluster:
    """Runner's processes started on `repo` in `env`, each in a session of its own (killed with
    it by stop), and the store they share."""

    def __init__(self, repo: Path, env: dict[str, str]) -> None:
        self.repo, self.env = repo, env
        self.procs: list[subprocess.Popen[bytes]] = []
        self.store: Store = open_store(env.get("REDIS_URL", ""), repo / ".runner")

    def runner(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "runner", *args, "--repo", str(self.repo)],
                              capture_output=True, text=True, timeout=timeout, env=self.env)

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.repo / f"{args[0]}.{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "-m", "runner", *args, "--repo",
                                 str(self.repo)], env=self.env, stdout=log, stderr=log,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def worker(self, name: str) -> subprocess.Popen[bytes]:
        proc = self.start("worker", name)
        poll(lambda: b" ready." in self._log(proc), 60, f"worker {name} ready")
        return proc

    def _log(self, proc: subprocess.Popen[bytes]) -> bytes:
        i = self.procs.index(proc)
        return b"".join(p.read_bytes() for p in self.repo.glob(f"*.{i}.log"))

    def enqueue(self, job: str) -> str:
        done = self.runner("run", job, "--enqueue")
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def state(self, run_id: str) -> str:
        return str((self.store.run(run_id) or RunRecord(run_id)).state)

    def final(self, run_id: str, deadline: float = 60) -> RunRecord:
        record: RunRecord = poll(lambda: (r := self.store.run(run_id)) and r.state not in
                                 (*ACTIVE, "RETRY") and r, deadline,
                                 f"run {run_id} ends")
        return record

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)


def broker_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The environment of runner processes on the embedded default or on a fresh real Redis,
    as the test's parameter says."""
    env = {**os.environ, "RUNNER_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("REDIS_URL", None)
    if request.param == "redis":
        server: Redis = request.getfixturevalue("redis_server")
        import redis

        redis.Redis.from_url(server.url).flushall()
        env["REDIS_URL"] = server.url
    return env


def make_cluster(tmp_path: Path, redis_url: str | None) -> Cluster:
    """A Cluster on a fresh (flushed) Redis, or on the embedded default when `redis_url` is
    None, with no API settings of the caller's environment and a `secretive` job."""
    env = {**os.environ, "RUNNER_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("REDIS_URL", None)
    for key in ("RUNNER_API_TOKENS", "RUNNER_API_JWT_KEY", "RUNNER_API_JWT_MAX_LIFETIME",
                "RUNNER_API_JWT_AUDIENCE", "RUNNER_API_JWT_ISSUER", "RUNNER_API_ALLOWED_HOSTS"):
        env.pop(key, None)
    if redis_url:
        import redis

        redis.Redis.from_url(redis_url).flushall()
        env["REDIS_URL"] = redis_url
    repo = tmp_path / "config"
    for d in ("targets.d", "jobs.d", "schedules.d"):
        (repo / d).mkdir(parents=True)
    (repo / "queues.yaml").write_text(QUEUES)
    (repo / "targets.d" / "t.yaml").write_text("targets:\n  here: {transport: local}\n")
    (repo / "jobs.d" / "j.yaml").write_text(
        JOBS + "  secretive: {queue: other, targets: [here], "
               "env: {PASSWORD: env:RUNNER_SECRET_JOB}, steps: [{command: 'echo pw=$PASSWORD'}]}\n")
    env["RUNNER_SECRET_JOB"] = "hunter2-very-secret"
    return Cluster(repo, env)


def gated_cluster(tmp_path: Path) -> tuple[Redis, int, Cluster, Path]:
    """A Redis that keeps its data (append-only file), its port, a cluster on it, and the
    path whose creation ends the cluster's `gated` job (it runs until then)."""
    server = start_redis(tmp_path / "redis", persist=True)
    port = int(server.url.rsplit(":", 1)[1].split("/")[0])
    cluster = make_cluster(tmp_path, server.url)
    go = tmp_path / "go"
    (cluster.repo / "jobs.d" / "gated.yaml").write_text(
        "jobs:\n  gated: {queue: other, targets: [here], steps: [{command: "
        f"'while [ ! -e {go} ]; do sleep 0.05; done; echo finished'}}]}}\n")
    return server, port, cluster, go


def health(port: int, reasons: list[str] | None = None) -> int | None:
    """The status code of GET /api/health (its error, if any, added to `reasons`), None when
    nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        if reasons is not None:
            reasons.append(json.loads(e.read())["error"])
        return e.code
    except OSError:
        return None


def status(repo: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`runner status --repo REPO` in `env`."""
    return subprocess.run([sys.executable, "-m", "runner", "status", "--repo", str(repo)],
                          env=env, capture_output=True, text=True, timeout=60)


def reconcile_status(state: Path) -> dict[str, Any]:
    """The embedded store's reconcile entry of the repository `state`."""
    return FileStore(state / ".runner" / "state").get("reconcile") or {}


def finished_since(url: str, since: float) -> list[float]:
    """When each SUCCESS run of `quick` created after `since` finished (Redis may be away)."""
    try:
        runs = RedisStore(url).runs(job="quick", limit=500)
    except RunnerError:  # Redis still starting: nothing yet
        return []
    return sorted(float(r.finished or 0) for r in runs
                  if r.state == "SUCCESS" and float(r.created or 0) > since)


def a_worker_runs_a_job(redis_url: str, tmp_path: Path) -> None:
    """A `runner worker` on `redis_url` takes a run that `runner run --enqueue --wait`
    queues through the same URL, with no traceback."""
    repo = small_repo(tmp_path / "config", HELLO)
    env = {**os.environ, "REDIS_URL": redis_url, "RUNNER_CACHE_DIR": str(tmp_path / "cache")}
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "runner", "worker", "w", "--repo",
                                   str(repo)], env=env, stdout=log, stderr=log,
                                  start_new_session=True)
    try:
        poll(lambda: b" ready." in log_path.read_bytes() or worker.poll() is not None, 60,
             "the worker is ready")
        assert worker.poll() is None, log_path.read_text()
        done = subprocess.run([sys.executable, "-m", "runner", "run", "hello", "--enqueue",
                               "--wait", "--repo", str(repo)], env=env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr + log_path.read_text()
        assert "Traceback" not in log_path.read_text()
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(30)


