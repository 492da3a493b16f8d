"""Fixtures: real git repositories in a temp dir, built from the project's own demo
configuration; real servers (Redis, sshd); Celery clusters on them."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runner.store import Store
from runner.store.files import FileStore
from runner.store.redis import RedisStore
from tests.helpers.cluster import JOBS, QUEUES, Cluster, broker_env, make_cluster
from tests.helpers.repos import copy_demo, git
from tests.servers import Redis, Sshd, start_redis, start_sshd


@pytest.fixture
def demo_repo(tmp_path: Path) -> Path:
    """A git repository holding a copy of the demo configuration, one commit on main."""
    repo = copy_demo(tmp_path / "config")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "demo")
    return repo


@pytest.fixture
def commit(demo_repo: Path) -> Callable[[dict[str, str | None], str], str]:
    """Write files (None deletes) and commit them; returns the new commit id."""
    def write(files: dict[str, str | None], message: str = "change") -> str:
        for rel, text in files.items():
            path = demo_repo / rel
            if text is None:
                path.unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
        git(demo_repo, "add", "-A")
        git(demo_repo, "commit", "-q", "-m", message)
        return git(demo_repo, "rev-parse", "HEAD")
    return write


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """A real OpenSSH sshd on a free loopback port (one per test process)."""
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    """A real redis-server on a free loopback port (one per test process)."""
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(params=["embedded", "redis"])
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    """A Cluster on the embedded default and on a fresh real Redis (stopped after)."""
    env = broker_env(request, tmp_path)
    repo = tmp_path / "config"
    for d in ("targets.d", "jobs.d", "schedules.d"):
        (repo / d).mkdir(parents=True)
    (repo / "queues.yaml").write_text(QUEUES)
    (repo / "targets.d" / "t.yaml").write_text("targets:\n  here: {transport: local}\n")
    (repo / "jobs.d" / "j.yaml").write_text(JOBS)
    c = Cluster(repo, env)
    yield c
    c.stop()


@pytest.fixture
def redis_cluster(tmp_path: Path, redis_server: Redis) -> Iterator[Cluster]:
    """make_cluster's Cluster on the session's Redis (flushed)."""
    c = make_cluster(tmp_path, redis_server.url)
    yield c
    c.stop()


@pytest.fixture
def embedded_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """make_cluster's Cluster on the embedded default."""
    c = make_cluster(tmp_path, None)
    yield c
    c.stop()


@pytest.fixture(params=["files", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """The same store tests on files (tmp_path) and on the session's Redis (a key prefix of
    the test's own)."""
    if request.param == "files":
        return FileStore(tmp_path / "state")
    server: Redis = request.getfixturevalue("redis_server")
    return RedisStore(server.url, prefix=f"t{uuid.uuid4().hex[:8]}:")
