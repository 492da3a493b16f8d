"""Runs asked for, stopped and read back: enqueue, retry, cancel, history."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery

from runner import publish
from runner.celery import coordinate, tasks
from runner.config.model import ConfigSet
from runner.config.query import lookup
from runner.errors import RunnerError, UsageError
from runner.report import created_of
from runner.runs import ACTIVE, RunRecord
from runner.store import Store
from runner.store.entries import read_publisher
from runner.system import System

Load = Callable[[], tuple[Celery, ConfigSet]]  # the Celery app and its configuration, on demand


def action(what: str, by: str, role: str, via: str, **more: Any) -> dict[str, Any]:
    """An entry of a run record's `actions`: what was asked, by whom, when, through what."""
    return {"action": what, "by": by, "role": role, "at": time.time(), "via": via, **more}


def cli_action(what: str, **more: Any) -> dict[str, Any]:
    """An `actions` entry for a command run by the local user (who can reach the store)."""
    import getpass

    return action(what, getpass.getuser(), "local", "cli", **more)


class RunNotFound(UsageError):
    """There is no run of that id in the store."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"there is no run {run_id!r} (runner history lists them)")
        self.run_id = run_id


class RunNotActive(UsageError):
    """The run has already ended: nothing to cancel."""


class JobNotFound(UsageError):
    """The configuration has no job of that name."""

    def __init__(self, message: str, name: str, revision: str) -> None:
        super().__init__(message)
        self.name, self.revision = name, revision


@dataclass(frozen=True)
class Queued:
    """A run queued for the workers (state PENDING)."""

    run_id: str
    job: str
    retry_of: str | None = None


@dataclass(frozen=True)
class Cancelled:
    """A cancel asked for: the record as the cancel left it (a queued run's already
    REVOKED) and the state the store holds now."""

    run_id: str
    record: RunRecord
    state: str | None


@dataclass(frozen=True)
class History:
    """Runs, newest first (from the store, else from the report branch)."""

    runs: tuple[RunRecord, ...]


def enqueue(app: Celery, store: Store, config: ConfigSet, job: str, trigger: str,
            limit: str | None = None, action: dict[str, Any] | None = None,
            schedule: str | None = None, scheduled_for: str | None = None,
            params: Mapping[str, Any] | None = None) -> Queued:
    """Queues a run of `job` (on the targets matching `limit`, with `params`, typed values
    for its params); `action` (who asked, via what) joins its record's `actions`.
    Wrong params are ParamsInvalid, before anything is queued."""
    if job not in config.jobs and job not in config.workflows:
        try:
            lookup(config, job)  # its message names the jobs there are
        except UsageError as e:
            raise JobNotFound(str(e), job, config.revision) from None
    extra = {"actions": [action]} if action else None
    run_id = tasks.enqueue(app, store, config, job, trigger, limit, schedule=schedule,
                           scheduled_for=scheduled_for, extra=extra, params=params)
    return Queued(run_id, job)


def retry(load: Load, store: Store, run_id: str,
          action: dict[str, Any] | None = None) -> Queued:
    """Queues a new run of the same job and limit as `run_id`, linked to it. `load` is
    called once the run is known: an unknown run is RunNotFound whatever the configuration."""
    record = store.run(run_id)
    if record is None:
        raise RunNotFound(run_id)
    app, config = load()
    extra = {"actions": [action]} if action else None
    return Queued(tasks.retry(app, store, config, run_id, extra=extra), str(record.job),
                  run_id)


def cancel(load: Load, store: Store, run_id: str, by: str,
           action: dict[str, Any] | None = None) -> Cancelled:
    """A queued run never starts; a running one stops its targets and ends REVOKED. `by`
    names who asked in the reason; `action` joins the record's `actions` first, so it is
    in the record when the run becomes final. `load` is called once the run is known to be
    active: an unknown or ended run is refused whatever the configuration."""
    record = store.run(run_id)
    if record is None:
        raise RunNotFound(run_id)
    if record.state not in ACTIVE:
        raise RunNotActive(f"run {run_id} is already {record.state}; nothing to cancel")
    app, config = load()
    if action:
        store.update_run(run_id, {"actions": [*(record.actions or ()), action]})
    try:
        was = tasks.cancel(app, store, run_id, by)
    except UsageError as e:  # it ended meanwhile
        raise RunNotActive(str(e)) from None
    if was.workflow is not None:  # its running children are cancelled now, not at beat's look
        coordinate.advance(store, app, config, run_id)
    now = store.run(run_id)
    return Cancelled(run_id, was, now.state if now else None)


def history(system: System, job: str | None, limit: int, report_branch: str) -> History:
    """The newest `limit` runs (of `job`); `job` may be a run id: that run. Runs gone from
    the store are read from `report_branch`."""
    store = system.store
    if job and created_of(job) is not None:
        record = store.run(job) or _from_reports(system, report_branch, run_id=job)
        if record is None:
            raise UsageError(f"there is no run {job!r} in the store or on {report_branch}")
        return History((record,))
    runs = store.runs(job, limit)
    if not runs and job:
        runs = [r for r in [_from_reports(system, report_branch, job=job)] if r]
    return History(tuple(runs))


def _from_reports(system: System, branch: str, run_id: str | None = None,
                  job: str | None = None) -> RunRecord | None:
    """A run from the report branch (by id, or the latest of `job`), or None. The publisher's
    git directory when it is on this machine, else the local one's."""
    rec = read_publisher(system.store)
    try:
        git_dir = Path(rec.git_dir) if rec and rec.git_dir and Path(rec.git_dir).is_dir() \
            else publish.locate(system.repo, system.state_dir, None)[0]
    except RunnerError:
        return None
    found = publish.read_run(git_dir, branch, run_id) if run_id else \
        publish.read_latest(git_dir, branch, str(job))
    return None if found is None else RunRecord.from_json(found)
