"""REDIS_URL in the forms Celery accepts: a Unix socket (unix://, redis+socket://) works for the
store and the broker alike, against a real redis-server and a real worker."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.redis_url import broker_url, store_url
from runner.settings import Settings

JOBS = "jobs:\n  hello: {queue: q, targets: [here], steps: [{command: echo hello}]}\n"


def _wait(check: object, deadline: float, what: str) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {deadline}s")


@pytest.fixture
def socket_redis(tmp_path: Path) -> Iterator[Path]:
    """A redis-server listening only on a Unix socket (path kept short: 107 bytes at most)."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    sock = Path(f"/tmp/runner-test-{os.getpid()}-{time.monotonic_ns()}.sock")
    proc = subprocess.Popen([binary, "--port", "0", "--unixsocket", str(sock), "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(sock.exists, 10, "redis-server's socket")
        yield sock
    finally:
        proc.terminate()
        proc.wait(10)
        sock.unlink(missing_ok=True)


def test_store_and_broker_forms() -> None:
    assert store_url("redis+socket:///run/r.sock?db=2") == "unix:///run/r.sock?db=2"
    assert broker_url("unix:///run/r.sock?db=2") == "redis+socket:///run/r.sock?db=2"
    assert store_url("rediss://:pw@h:6380/0?ssl_cert_reqs=CERT_REQUIRED") == \
        "rediss://:pw@h:6380/0?ssl_cert_reqs=required"
    assert store_url("rediss://h/0?x=1&ssl_cert_reqs=cert_none") == \
        "rediss://h/0?x=1&ssl_cert_reqs=none"
    assert broker_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_celerys_cert_reqs_spelling_reaches_redis_py() -> None:
    """redis-py refuses ssl_cert_reqs=CERT_REQUIRED when it builds a connection."""
    import ssl

    import redis

    for given in ("CERT_REQUIRED", "required"):
        url = Settings.from_env({"REDIS_URL": f"rediss://h:6380/0?ssl_cert_reqs={given}"}).redis_url
        connection = redis.Redis.from_url(url).connection_pool.make_connection()
        assert connection.cert_reqs == ssl.CERT_REQUIRED  # type: ignore[attr-defined]


def a_worker_runs_a_job(redis_url: str, tmp_path: Path) -> None:
    """A `runner worker` on `redis_url` takes a run that `runner run --enqueue --wait`
    queues through the same URL, with no traceback."""
    repo = tmp_path / "config"
    for d in ("targets.d", "jobs.d"):
        (repo / d).mkdir(parents=True)
    (repo / "queues.yaml").write_text("queues: {q: {}}\nworkers:\n  w: {queues: [q]}\n")
    (repo / "targets.d" / "t.yaml").write_text("targets:\n  here: {transport: local}\n")
    (repo / "jobs.d" / "j.yaml").write_text(JOBS)
    env = {**os.environ, "REDIS_URL": redis_url, "RUNNER_CACHE_DIR": str(tmp_path / "cache")}
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "runner", "worker", "w", "--repo",
                                   str(repo)], env=env, stdout=log, stderr=log,
                                  start_new_session=True)
    try:
        _wait(lambda: b" ready." in log_path.read_bytes() or worker.poll() is not None, 60,
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


@pytest.mark.parametrize("scheme", ["unix", "redis+socket"])
def test_a_unix_socket_serves_store_and_broker(socket_redis: Path, tmp_path: Path,
                                               scheme: str) -> None:
    a_worker_runs_a_job(f"{scheme}://{socket_redis}", tmp_path)
