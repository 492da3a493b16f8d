"""Reading runs back from the report branch (for `runner history` and the API's run list
once the store let them go)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from runner.publish.git import BAD_JSON, Git
from runner.report import created_of, day, safe

SLACK = 86400.0  # a run's folder is its creation's UTC day, its id's time a little earlier


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


def runs_before(git_dir: Path, branch: str, before: tuple[float, str] | None, limit: int,
                job: str | None = None, keep: Callable[[dict[str, Any]], bool] = bool,
                since: float | None = None, scan: int = 500
                ) -> tuple[list[dict[str, Any]], tuple[float, str] | None]:
    """Up to `limit` run records of the report branch older than `before` ((time its id
    encodes, run id); None: from the newest), newest first, of `job`, created at or after
    `since`, that `keep` keeps, reading no more than `scan` of them; and the position to go
    on from (None: no more)."""
    git = Git(git_dir)
    ref = f"refs/heads/{branch}"
    out: list[dict[str, Any]] = []
    looked, last = 0, None
    for d in _days(git, ref, before[0] + SLACK if before else None):
        if since is not None and d < day(since - SLACK):
            break
        found = [(created_of(i) or 0.0, i, f"runs/{d}/{j}/{i}")
                 for j in ([safe(job)] if job else _names(git, f"{ref}:runs/{d}"))
                 for i in _names(git, f"{ref}:runs/{d}/{j}")]
        for created, rid, path in sorted(found, reverse=True):
            if before is not None and (created, rid) >= before:
                continue
            if len(out) == limit or looked == scan:
                return out, last
            looked, last = looked + 1, (created, rid)
            done = git.run("cat-file", "blob", f"{ref}:{path}/result.json", check=False)
            with contextlib.suppress(*BAD_JSON):
                record = dict(json.loads(done.stdout)) if done.returncode == 0 else {}
                if since is not None and float(record.get("created") or created) < since:
                    return out, None
                if record and keep(record):
                    out.append(record)
    return out, None


def _days(git: Git, ref: str, newest: float | None) -> Iterator[str]:
    """The branch's runs/YYYY/MM/DD folders, newest first, none after the day of `newest`."""
    top = day(newest) if newest is not None else None
    for y in sorted(_names(git, f"{ref}:runs"), reverse=True):
        for m in sorted(_names(git, f"{ref}:runs/{y}"), reverse=True):
            for d in sorted(_names(git, f"{ref}:runs/{y}/{m}"), reverse=True):
                if top is None or f"{y}/{m}/{d}" <= top:
                    yield f"{y}/{m}/{d}"


def _names(git: Git, tree: str) -> list[str]:
    return git.run("ls-tree", "--name-only", tree, check=False).stdout.split()
