"""What the dashboard's job and schedule pages show (GET /api/jobs/NAME, /api/schedules/NAME):
a job's definition as written at the applied revision (file, line, text), the targets it
resolves to now, its schedules' next firings, its params and run statistics; a schedule's next
firings in its zone and its past ones from the run records."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from runner.config import documents
from runner.config.load import blob_id, kind_for
from runner.config.model import ConfigSet, Job
from runner.config.query import select
from runner.desired import next_fires, when
from runner.ops.lateness import lateness_of
from runner.runs import RunState
from runner.store import RunFilter, keys
from runner.store.entries import Suspended, read_suspended
from runner.system import System

JOB_NEXT, SCHEDULE_NEXT = 5, 10  # next firings shown
FIRINGS = 100     # past firings of a schedule shown
STATS_RUNS = 1000  # a job's newest runs its statistics count
DURATIONS = 100   # of which the durations of the newest ended ones
PARAM_FIELDS = ("enum", "default", "description", "minimum", "maximum", "pattern", "max_length")


@dataclass(frozen=True)
class Definition:
    """Where an object is written: its file, first line, and the text of its lines."""

    file: str
    line: int
    yaml: str


def definition(system: System, revision: str, section: str, name: str) -> Definition | None:
    """The text of `section`/`name` (e.g. jobs/build) as written in its file at `revision`:
    the file the reconciler published for it, read from git by blob id (the reconciler's
    mirror, or --repo); without a published revision, the file in --repo. None: not found."""
    published = system.store.get(keys.revision(revision)) or {}
    if published.get("config"):
        for path, blob in sorted(published["config"].items()):
            if kind_for(path) != section:
                continue
            objects = (system.store.get(keys.definitions(blob)) or {}).get("objects") or {}
            if f"{section}/{name}" in objects:
                return _find(path, _blob(system, path, blob), section, name)
        return None
    from runner.source import DirSnapshot

    for f in DirSnapshot(system.repo).files():
        if kind_for(f.path) == section:
            found = _find(f.path, f.read(), section, name)
            if found is not None:
                return found
    return None


def _find(path: str, data: bytes | None, section: str, name: str) -> Definition | None:
    if data is None:
        return None
    text = data.decode("utf-8", "replace")
    span = documents.parse(path, data).span((section, name), text)
    if span is None:
        return None
    return Definition(path, span[0], "\n".join(text.splitlines()[span[0] - 1:span[1]]) + "\n")


def _blob(system: System, path: str, blob: str) -> bytes | None:
    """The content of git blob `blob`: the --repo file at `path` when it is that blob, else
    from the reconciler's mirror or --repo's git objects; None when none has it."""
    try:
        data = (system.repo / path).read_bytes()
        if blob_id(data) == blob:
            return data
    except OSError:
        pass
    for git_dir in (system.state_dir / "source.git", system.repo):
        done = subprocess.run(["git", "-C", str(git_dir), "cat-file", "blob", blob],
                              capture_output=True, check=False, timeout=30)
        if done.returncode == 0:
            return done.stdout
    return None


def job(system: System, config: ConfigSet, found: Job, now: datetime,
        commit_url: Callable[[str], str | None]) -> dict[str, Any]:
    """The job page of `found` in `config` at `now`."""
    where = definition(system, config.revision, "jobs", found.name)
    return {"name": found.name, "queue": found.queue, "description": found.description,
            "file": where.file if where else None, "line": where.line if where else None,
            "yaml": where.yaml if where else None, "revision": config.revision,
            "commit_url": commit_url(config.revision), "timeout": found.timeout,
            "deadline": found.deadline, "targets": select(config, found, None),
            "schedules": [{"name": s.name, "next": [t.isoformat()
                                                    for t in next_fires(s, now, JOB_NEXT)]}
                          for _, s in sorted(config.schedules.items())
                          if s.job == found.name and not s.workflow],
            "params": {p.name: {"type": p.type, **{k: list(v) if isinstance(v, tuple) else v
                                                   for k in PARAM_FIELDS
                                                   if (v := getattr(p, k)) not in (None, "")}}
                       for p in found.params},
            "stats": stats(system, found.name)}


def stats(system: System, name: str) -> dict[str, Any]:
    """Of job `name`'s newest STATS_RUNS runs in the store: how many, succeeded, failed, and
    [finished, seconds] of the newest DURATIONS ended ones, oldest first."""
    runs, _ = system.store.runs_page(name, limit=STATS_RUNS, scan=STATS_RUNS)
    ended = [(r.finished, r.finished - r.started) for r in runs
             if r.state in (RunState.SUCCESS, RunState.FAILURE) and r.finished and r.started]
    return {"runs": len(runs), "succeeded": sum(r.state == RunState.SUCCESS for r in runs),
            "failed": sum(r.state == RunState.FAILURE for r in runs),
            "durations": [[f, round(d, 3)] for f, d in reversed(ended[:DURATIONS])]}


def schedule(system: System, config: ConfigSet, name: str, now: datetime) -> dict[str, Any]:
    """The schedule page of `name` (in `config`) at `now`."""
    s = config.schedules[name]
    runs, _ = system.store.runs_page(s.job, limit=FIRINGS,
                                     where=RunFilter(trigger=f"schedule {name}"))
    return {"name": name, "job": s.job, "workflow": s.workflow, "when": when(s),
            "timezone": s.timezone, "deadline": s.deadline,
            "next": [t.isoformat() for t in next_fires(s, now, SCHEDULE_NEXT)],
            "firings": [{"at": r.scheduled_for or _iso(r.created), "run_id": r.run_id,
                         "state": r.state, "late": lateness_of(r.to_json()), "error": r.error,
                         "overdue": r.late}
                        for r in runs],
            "suspended": (read_suspended(system.store) or Suspended()).holds(name)}


def _iso(when_: float | None) -> str | None:
    return None if when_ is None else datetime.fromtimestamp(when_, UTC).isoformat()
