"""Real git repositories in a temp dir, built from the project's own demo configuration."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.servers import Redis, Sshd, start_redis, start_sshd

PROJECT = Path(__file__).resolve().parents[2]
DEMO = ("queues.yaml", "targets.d", "jobs.d", "schedules.d", "files")
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}, check=True)
    return done.stdout.strip()


def copy_demo(repo: Path) -> Path:
    """A copy of the project's demo configuration in `repo` (created)."""
    repo.mkdir()
    for name in DEMO:
        src = PROJECT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, repo / name)
    return repo


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
