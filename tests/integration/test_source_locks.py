"""Reading a configuration directory that is a git checkout takes no git lock: an operator's
`git add` or `git commit` in it at that moment must not fail on index.lock."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from runner.source import DirSnapshot


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def test_the_revision_of_a_checkout_writes_nothing_into_its_git(tmp_path: Path) -> None:
    repo = tmp_path / "config"
    (repo / "jobs.d").mkdir(parents=True)
    (repo / "queues.yaml").write_text("queues: {q: {}}\n")
    (repo / "jobs.d" / "j.yaml").write_text("jobs: {}\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    head = git(repo, "rev-parse", "HEAD")
    index = repo / ".git" / "index"
    for f in (repo / "queues.yaml", repo / "jobs.d" / "j.yaml"):  # same bytes, new stat:
        os.utime(f, ns=(index.stat().st_mtime_ns + 10**9,) * 2)  # a plain `git status`
    before = index.stat().st_mtime_ns                              # would rewrite the index
    assert DirSnapshot(repo).revision == head  # clean: same bytes
    assert index.stat().st_mtime_ns == before, "git status refreshed (locked, wrote) the index"
    (repo / ".git" / "index.lock").write_text("")  # an operator's git holds the lock now
    (repo / "queues.yaml").write_text("queues: {q: {}, r: {}}\n")
    assert DirSnapshot(repo).revision == f"{head}-dirty"
