"""Configuration repositories on disk (the project's demo, the validation cases' base), git
with a fixed identity, and the `runner` command line run as a user would."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
DEMO = ("queues.yaml", "targets.d", "jobs.d", "schedules.d", "workflows.d", "files")
BASE = PROJECT / "tests" / "cases" / "_base"  # the validation cases' small valid repository
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}

Commit = Callable[[dict[str, str | None], str], str]  # the `commit` fixture


def git(repo: Path, *args: str) -> str:
    """`git -C repo ARGS` with the tests' identity and no user configuration; its stdout."""
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


def small_repo(repo: Path, jobs: str) -> Path:
    """A configuration of one local target `here`, queue q served by worker w, and `jobs`
    (jobs.d/j.yaml)."""
    for d in ("targets.d", "jobs.d"):
        (repo / d).mkdir(parents=True)
    (repo / "queues.yaml").write_text("queues: {q: {}}\nworkers: {w: {queues: [q]}}\n")
    (repo / "targets.d" / "t.yaml").write_text("targets:\n  here: {transport: local}\n")
    (repo / "jobs.d" / "j.yaml").write_text(jobs)
    return repo


def add_job(repo: Path, text: str) -> None:
    """`text` as the repository's jobs.d/extra.yaml."""
    (repo / "jobs.d" / "extra.yaml").write_text(text)


def runner(*args: str, cwd: Path = PROJECT, cache: Path | None = None
           ) -> subprocess.CompletedProcess[str]:
    """`runner ARGS` in `cwd`, asserted to print no traceback."""
    cache = cache or Path(tempfile.gettempdir()) / "runner-test-cache"
    env = {**os.environ, "RUNNER_CACHE_DIR": str(cache)}
    done = subprocess.run([sys.executable, "-m", "runner", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)
    assert "Traceback" not in done.stderr + done.stdout
    return done


def runner_on(repo: Path, *args: str, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess[str]:
    """`runner ARGS --repo REPO` with `env` added to the environment."""
    return subprocess.run([sys.executable, "-m", "runner", *args, "--repo", str(repo)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def up_fails(repo: Path, *args: str, env: dict[str, str] | None = None
             ) -> tuple[int, str, float]:
    """`runner up --repo REPO ARGS` in a session of its own, expected to exit on its own within
    30 s: its exit status, stderr and seconds taken; no process of its session is left."""
    started = time.monotonic()
    up = subprocess.Popen([sys.executable, "-m", "runner", "up", "--repo", str(repo), *args],
                          env={**{k: v for k, v in os.environ.items() if k != "REDIS_URL"},
                               **(env or {})}, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, err = up.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(up.pid, signal.SIGKILL)
        up.communicate()
        raise AssertionError("runner up did not exit within 30 s") from None
    try:
        os.killpg(up.pid, signal.SIGKILL)  # whatever it left running
    except ProcessLookupError:
        pass
    else:
        raise AssertionError(f"runner up left processes of its session running: {err}")
    assert "Traceback" not in err
    return up.returncode, err, time.monotonic() - started
