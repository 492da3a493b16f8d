"""REDIS_URL in the forms Celery accepts: a Unix socket (unix://, redis+socket://) works for the
store and the broker alike, against a real redis-server and a real worker."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.adapters.redis_url import broker_url, store_url
from runner.settings import Settings
from tests.helpers.cluster import a_worker_runs_a_job
from tests.helpers.procs import poll


@pytest.fixture
def socket_redis(tmp_path: Path) -> Iterator[Path]:
    """A redis-server listening only on a Unix socket (path kept short: 107 bytes at most)."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    sock = Path(f"/tmp/runner-test-{os.getpid()}-{time.monotonic_ns()}.sock")
    proc = subprocess.Popen([binary, "--port", "0", "--unixsocket", str(sock), "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        poll(sock.exists, 10, "redis-server's socket")
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


@pytest.mark.parametrize("scheme", ["unix", "redis+socket"])
def test_a_unix_socket_serves_store_and_broker(socket_redis: Path, tmp_path: Path,
                                               scheme: str) -> None:
    a_worker_runs_a_job(f"{scheme}://{socket_redis}", tmp_path)
