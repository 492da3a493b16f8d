"""Reading runs back from the report branch (for `runner history` once the store let them go)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from runner.publish.git import BAD_JSON, Git
from runner.report import created_of, day, safe


def read_run(git_dir: Path, branch: str, run_id: str) -> dict[str, Any] | None:
    """A run's record from the report branch's tip tree (result.json), or None."""
    when = created_of(run_id)
    if when is None or "/" in run_id:
        return None
    git = Git(git_dir)
    for d in sorted({day(when - 1), day(when + 1)}):
        jobs = git.run("ls-tree", "-d", "--name-only", f"refs/heads/{branch}:runs/{d}",
                       check=False).stdout.split()
        for job in jobs:
            done = git.run("cat-file", "blob",
                           f"refs/heads/{branch}:runs/{d}/{job}/{run_id}/result.json",
                           check=False)
            if done.returncode == 0:
                with contextlib.suppress(*BAD_JSON):
                    return dict(json.loads(done.stdout))
    return None


def read_latest(git_dir: Path, branch: str, job: str) -> dict[str, Any] | None:
    """The newest run of `job` on the report branch (its full record), or None."""
    git = Git(git_dir)
    done = git.run("cat-file", "blob", f"refs/heads/{branch}:latest/{safe(job)}.json",
                   check=False)
    if done.returncode != 0:
        return None
    with contextlib.suppress(*BAD_JSON):
        path = json.loads(done.stdout)["path"]
        full = git.run("cat-file", "blob", f"refs/heads/{branch}:{path}/result.json",
                       check=False)
        return dict(json.loads(full.stdout)) if full.returncode == 0 else None
    return None
