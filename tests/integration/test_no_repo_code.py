"""Issue 16, finding 3: no code from the configuration repository runs inside runner. `runner
up`, started in the repository as users do, starts its children with `python -P`, so modules
planted in the working directory (runner/, yaml.py, celery.py, ...) are never imported."""

from __future__ import annotations

import sys
from pathlib import Path

from runner.store.files import FileStore
from tests.helpers.procs import poll
from tests.helpers.repos import git
from tests.servers import runner_up

PLANTED = ("runner/__init__.py", "runner/__main__.py", "yaml.py", "celery.py", "click.py",
           "kombu.py", "git.py")


def test_modules_planted_in_the_repository_never_run_under_up(demo_repo: Path,
                                                              tmp_path: Path) -> None:
    marks = tmp_path / "imported"
    marks.mkdir()
    (demo_repo / "schedules.d" / "fast.yaml").write_text(
        "schedules:\n  fast: {job: health-check, every: 2s, overlap: allow}\n")
    git(demo_repo, "add", "-A")
    git(demo_repo, "commit", "-q", "-m", "fire every 2s")
    for rel in PLANTED:  # untracked, in the working directory of up and its children
        path = demo_repo / rel
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"open({str(marks / rel.replace('/', '.'))!r}, 'w').close()\n")
    console = Path(sys.executable).with_name("runner")  # what users run, on no sys.path[0]
    assert console.exists(), f"{console}: the console script of the installed package"
    with runner_up(Path("."), tmp_path / "up.log", cwd=demo_repo, command=(str(console),)):
        store = FileStore(demo_repo / ".runner" / "state")
        head = git(demo_repo, "rev-parse", "HEAD")
        poll(lambda: (store.get("reconcile") or {}).get("applied_revision") == head, 60,
             "the reconciler applies HEAD")
        poll(lambda: [r for r in store.runs(limit=50) if r.schedule == "fast"
                      and r.state == "SUCCESS"], 60, "a scheduled run succeeds")
        poll(lambda: (store.get("reports") or {}).get("head"), 60, "the publisher commits it")
    log = (tmp_path / "up.log").read_text()
    assert "Traceback" not in log, log
    assert sorted(p.name for p in marks.iterdir()) == [], log
