"""Log hygiene: no secret in any line runner prints, and one line per real event."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers.cluster import reconcile_status
from tests.helpers.procs import poll
from tests.helpers.repos import git
from tests.servers import free_port, runner_up, wait_port

PASSWORD = "hunter2-Zq81"


def test_no_redis_password_in_any_line(demo_repo: Path, tmp_path: Path) -> None:
    """Start-up lines, errors, status and the whole `runner up` log show the Redis URL with its
    password as `**`, as Celery does."""
    port = free_port()
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    server = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--requirepass", PASSWORD,
                               "--dir", str(tmp_path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, server)
        url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
        env = {**os.environ, "REDIS_URL": url, "RUNNER_CACHE_DIR": str(tmp_path / "cache")}

        def runner(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "runner", *args, "--repo",
                                   str(demo_repo)], capture_output=True, text=True, timeout=120,
                                  env={**env, **extra}, check=False)

        said = []
        with runner_up(demo_repo, tmp_path / "up.log", env=env):
            done = runner("run", "health-check", "--enqueue", "--wait")
            assert done.returncode == 0, done.stdout + done.stderr
            said += [done.stdout, done.stderr, runner("status").stdout]
        closed = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"
        refused = [runner("status", REDIS_URL=closed), runner("beat", REDIS_URL=closed),
                   runner("run", "health-check", "--enqueue", REDIS_URL="redis://:x@[bad")]
        assert [r.returncode for r in refused] == [2, 2, 2]
        said += [r.stdout + r.stderr for r in refused]
        log = (tmp_path / "up.log").read_text()
        assert f"redis://:**@127.0.0.1:{port}/0" in log  # the URL is shown, masked
        assert "cannot reach Redis at REDIS_URL='redis://:**@" in refused[0].stderr
        assert all(PASSWORD not in text for text in [log, *said])
    finally:
        server.terminate()
        server.wait(10)


def test_reconcile_watch_says_one_line_per_real_event(demo_repo: Path, tmp_path: Path) -> None:
    """Looks that find nothing new (every --interval, a report commit, packed refs) say
    nothing; a new revision applied says one line."""
    home = tmp_path / "home"
    home.mkdir()
    with open(tmp_path / "reconcile.log", "wb") as log:
        watch = subprocess.Popen([sys.executable, "-m", "runner", "reconcile", "--watch",
                                  "--source", str(demo_repo), "--interval", "1", "--repo",
                                  str(home)], stdout=log, stderr=log,
                                 env={k: v for k, v in os.environ.items() if k != "REDIS_URL"})
    try:
        head = git(demo_repo, "rev-parse", "HEAD")
        poll(lambda: reconcile_status(home).get("applied_revision") == head, 60, "HEAD applied")
        first = reconcile_status(home)["last_reconcile"]
        git(demo_repo, "update-ref", "refs/heads/reports", head)  # as the publisher does
        git(demo_repo, "pack-refs", "--all")
        poll(lambda: reconcile_status(home)["last_reconcile"] > first + 3, 30, "three more looks")
        (demo_repo / "targets.d" / "extra.yaml").write_text(
            "targets:\n  extra-1: {transport: local}\n")
        git(demo_repo, "add", "-A")
        git(demo_repo, "commit", "-q", "-m", "a target")
        new = git(demo_repo, "rev-parse", "HEAD")
        poll(lambda: reconcile_status(home).get("applied_revision") == new, 30,
             "the commit applied")
    finally:
        watch.terminate()
        watch.wait(30)
    lines = (tmp_path / "reconcile.log").read_text().splitlines()
    assert lines == [f"main at {head[:12]}: applied", f"main at {new[:12]}: applied"]
