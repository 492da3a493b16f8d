"""The one Celery task, runner.run_job, and how runs are enqueued, cancelled and retried.

A run's record (store/) is written by whoever moves it: the enqueuer (PENDING), the worker
(STARTED, SUCCESS, FAILURE, REVOKED), `runner cancel` (REVOKED while queued), beat (SKIPPED,
MISSED). The task's `revision` is recorded; until the reconciler publishes revisions (issue 6)
a worker runs the configuration of its repository directory. Cancel is a flag in the store
that a running task polls, so the engine stops its targets cleanly (remote commands killed);
a queued run is also revoked through Celery's remote control and checks the flag first.

Celery sees what the record says: a run that ends FAILURE raises RunFailed with its reason
(task-failed), one that ends REVOKED raises billiard's Terminated, which the worker announces
as task-revoked. Both are acknowledged, never delivered again; so is the message of a run
whose pool process died (RunRequest). Each message carries the job's
name as its `shadow` name, so Flower, `celery events` and the worker's log name the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from billiard.exceptions import Terminated, WorkerLostError
from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded
from celery.worker.request import Request

from runner.celery import coordinate, output
from runner.celery.limits import Gate
from runner.celery.message import TASK
from runner.celery.queueing import cancel as cancel
from runner.celery.queueing import enqueue as enqueue
from runner.celery.queueing import pending as pending
from runner.celery.queueing import retry as retry
from runner.celery.queueing import send as send
from runner.config.model import ConfigSet
from runner.config.params import check
from runner.config.query import lookup, select, slots
from runner.errors import RunFailed, RunnerError, SlotTimeout, StoreUnavailable, UsageError
from runner.executor.base import RunResult
from runner.executor.cancel import Cancel
from runner.executor.direct import final
from runner.executor.engine import Engine
from runner.runs import ACTIVE, BEGUN, RunRecord, RunState, new_run_id
from runner.store import Store
from runner.store.outage import Outage
from runner.system import System

_POLL = 0.25  # seconds between looks at the cancel flag
T = TypeVar("T")
KEEP_FINAL = 600.0  # seconds a finished run keeps trying to save its final state
AFTER_SOFT = 20.0  # ... once its soft time limit passed (the hard limit comes 30 s after it)
log = logging.getLogger("runner.tasks")


@dataclass
class _Process:
    """Per worker process (created after the fork): one event loop and one Engine, so SSH
    connections and circuit breakers last across runs."""

    loop: asyncio.AbstractEventLoop | None = None
    engine: Engine | None = None


class RunRequest(Request):  # type: ignore[misc]
    """A run's request in the worker's main process: when the pool process running it dies
    (kill -9, the OOM killer), the run ends FAILURE with the reason and is retried per its
    job's `retries` (bury), once Celery has acknowledged its message."""

    def on_failure(self, exc_info: Any, send_failed_event: bool = True,
                   return_ok: bool = False) -> None:
        exc = getattr(exc_info.exception, "exc", exc_info.exception)
        lost = isinstance(exc, WorkerLostError)
        # lost: Celery still acknowledges it, marks it failed and sends task-failed; the
        # line below says what happened instead of its "Task handler raised error" traceback
        super().on_failure(exc_info, send_failed_event, return_ok or lost)
        if not lost:
            return
        pid = self.worker_pid or "?"
        why = f"worker process {pid} of {self.hostname} died during the run ({exc})"
        system: System = self.task.app.conf.runner_system
        try:
            retry_id = bury(self.task.app, system.store, system.config(), self.id, why)
        except RunnerError as e:  # the store is away: the reaper ends it later
            log.warning("run %s: %s; could not record it: %s", self.id, why, e)
            return
        log.warning("run %s: %s%s", self.id, why,
                    f"; retried as run {retry_id}" if retry_id else "")


def register(app: Celery, system: System) -> None:
    here = _Process()

    # throws: expected outcomes, which Celery logs (when its INFO lines are on) without a
    # traceback; acks_on_failure (the default) acknowledges them
    # a pool process that dies mid-run (kill -9, OOM): its message is acknowledged, never run
    # again as it is; RunRequest ends the run FAILURE and queues its retry (bury)
    # shared=False: a second app in this process gets its own task, bound to its own system
    @app.task(name=TASK, bind=True, acks_late=True, shared=False,  # type: ignore[untyped-decorator]
              reject_on_worker_lost=False, throws=(RunFailed, Terminated),
              Request=RunRequest)
    def run_job(self: Any, job: str, revision: str, run_id: str | None = None,
                limit: str | None = None, parent: str | None = None,
                params: dict[str, Any] | None = None) -> None:
        # returns nothing: the outcome is in the run's record, and Celery would still
        # serialize and repr a return value it does not keep (task_ignore_result)
        # no run_id: sent by Celery's own beat (runner plan --format celery): its task id
        run_id = run_id or str(self.request.id)
        redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
        state, error = execute(system, here, job, revision, run_id, limit,
                               self.request.hostname, redelivered, self.app, params)
        if parent:  # a workflow's child ended: the workflow's next nodes start now
            coordinate.after(self.app, system.config(), system.store, parent)
        if state == "STARTED" and error is None:  # a workflow run began: coordinated
            return
        if state in BEGUN:  # another delivery runs it (or ran it until it died)
            log.warning("%s: not run twice", error)
        elif state != "SUCCESS":
            raise (Terminated if state == "REVOKED" else RunFailed)(error or state)


def execute(system: System, here: _Process, name: str, revision: str, run_id: str,
            limit: str | None, worker: str | None, redelivered: bool,
            app: Celery | None = None, params: dict[str, Any] | None = None
            ) -> tuple[str, str | None]:
    """Runs the job (`params`: the run's values, as its record holds them) and records the
    outcome: (final state, reason). A workflow's run (with `app`) is handed to the
    coordinator and stays STARTED: ("STARTED", None)."""
    store = system.store
    live = output.LiveOutput(store, run_id)

    def save(**fields: Any) -> tuple[str, str | None]:  # final: its live output goes
        store.update_run(run_id, fields)
        live.clear()
        return str(fields["state"]), fields.get("error")

    # the store away (Redis, a full or read-only disk): the run waits to start, as it would
    # wait to save its end, rather than its message being spent on a record left PENDING
    begin = keep(lambda: store.begin_run(run_id, name, worker or "", time.time()), run_id)
    if begin.cancelled:
        return keep(lambda: save(state="REVOKED", finished=time.time(),
                                 error="cancelled before it started"), run_id)
    if not begin.started:  # a second delivery of a started or finished run: never twice
        return str(begin.previous), f"run {run_id} had already {begin.previous}"
    if redelivered:  # its first worker died after taking it, before starting it
        store.update_run(run_id, {"note": "delivered again: the worker that took it first "
                                          "died before starting it"})
    try:
        current = keep(system.config, run_id)
        if app is not None and name in current.workflows:  # no process holds it from now
            keep(lambda: coordinate.index(store, run_id), run_id)
            coordinate.after(app, current, store, run_id)
            return str(RunState.STARTED), None
        if name not in current.jobs:
            return save(state="REVOKED", finished=time.time(),
                        error=f"job {name} was removed from the configuration (revision "
                              f"{current.revision[:12]}); the queued run did not start")
        config = system.at(revision)  # the definitions of the revision that triggered it
        job = lookup(config, name)
        if params is None and job.params:  # sent by Celery's own beat: the defaults
            params = check(job.params, {})[0]
        targets = select(config, job, limit)
        files = system.files(job, config)
        wanted = slots(config, job, targets)
    except RunnerError as e:  # the store may be away too: kept until it is back
        why = str(e)
        return keep(lambda: save(state="FAILURE", finished=time.time(), error=why), run_id)
    if here.loop is None:
        here.loop = asyncio.new_event_loop()
        here.engine = Engine(system.settings, state_dir=system.state_dir)
    loop, engine, cancel = here.loop, here.engine, Cancel()
    assert engine is not None
    gate = Gate(store, run_id, worker or "", wanted, cancel, system.settings.limit_wait_max)

    async def limited() -> RunResult:  # inside its job's max_active slot, if it has one
        async with gate.run():
            return await engine.run(job, {t: config.targets[t] for t in targets}, files,
                                    run_id=run_id, revision=config.revision, cancel=cancel,
                                    params=params, gate=gate.target, watch=live.attach)

    def watch() -> None:  # a timer, not a task: most runs end before its first look
        with contextlib.suppress(StoreUnavailable):  # the store is away: look again later
            if who := store.cancel_requested(run_id):
                cancel.set(f"cancelled by {who}")
                return
            live.tick()
        timer[0] = loop.call_later(_POLL, watch)

    timer = [loop.call_later(_POLL, watch)]
    run = loop.create_task(limited())
    try:
        result = loop.run_until_complete(run)
    except SlotTimeout as e:  # the job's max_active slot, not granted in time
        why = str(e)
        return keep(lambda: save(state="FAILURE", finished=time.time(), error=why), run_id)
    except SoftTimeLimitExceeded:
        cancel.set("time limit")
        with contextlib.suppress(Exception):  # its commands are killed before it returns
            loop.run_until_complete(run)
        return keep(lambda: save(state="FAILURE", finished=time.time(),
                                 error=f"run {run_id} of {name} passed its time limit and "
                                       "was stopped"), run_id, AFTER_SOFT)
    finally:
        timer[0].cancel()
    try:
        return keep(lambda: save(**final(store, result)), run_id)
    except SoftTimeLimitExceeded:  # the store stayed away until the time limit: last tries
        return keep(lambda: save(**final(store, result)), run_id, AFTER_SOFT)


def keep(write: Callable[[], T], run_id: str, patience: float = KEEP_FINAL,
         clock: Callable[[], float] = time.monotonic) -> T:
    """write(), tried again with a backoff while the store is away, for up to `patience`
    seconds: a run that ended keeps its final state until it can save it."""
    outage, give_up = Outage(f"run {run_id}", log, clock), clock() + patience
    while True:
        try:
            result = write()
        except StoreUnavailable as e:
            delay = outage.lost(e)
            if clock() + delay > give_up:
                raise
            time.sleep(delay)  # the pool process has nothing else to do meanwhile
            continue
        outage.ok()
        return result


def sweep_orphans(store: Store, host: str, cli_only: bool = False) -> list[str]:
    """Runs begun (STARTED, WAITING) by a worker process (or a `runner run`) of this host
    that no longer exists end FAILURE with the reason. (Redis hands a worker's messages to
    another worker after the visibility timeout, so there `cli_only`: a direct run has no
    message; the embedded broker keeps unacknowledged messages in the dead process's
    memory.)"""
    ended = []
    for r in store.runs(limit=1000):
        worker = r.worker or ""
        name, _, where = worker.rpartition("@")
        pid = name.rpartition("-")[2]
        if r.state not in BEGUN or where != host or not pid.isdigit() or (
                cli_only and not name.startswith("cli-")) or r.workflow is not None:
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            why = (f"`runner run` (process {pid}) died during the run"
                   if name.startswith("cli-") else
                   f"worker {worker} died during the run; the embedded broker cannot deliver "
                   "it again")
            store.update_run(r.run_id, {"state": "FAILURE", "finished": time.time(),
                                        "error": f"{why} (run it again with runner retry)"})
            output.drop(store, r.run_id)  # its live output, which the dead one left
            ended.append(r.run_id)
        except PermissionError:
            continue  # alive, another user's
    return ended


def bury(app: Celery, store: Store, config: ConfigSet, run_id: str, why: str) -> str | None:
    """A run whose process died (its worker, its pool process, its `runner run`) ends FAILURE
    with `why`, unless it ended meanwhile; then, if its job has `retries.attempts` left
    (counted along the retry_of chain by the record's `attempt`) and its cancel was not
    requested (it died before it could stop), a new run is queued with
    trigger `retry-of RUN_ID`: its id, or None. A workflow run going is not ended: it is
    (again) on the index of those beat advances, which resumes it. Its message, if it is
    delivered again, finds the record final and runs nothing, so the command never runs
    twice at once."""
    record = store.run(run_id) or RunRecord(run_id)
    if record.workflow is not None and record.state == RunState.STARTED:
        coordinate.index(store, run_id)  # no process holds one: beat's looks resume it
        return None
    job = config.jobs.get(str(record.job))
    attempt = record.attempt or 1
    retry_id = (new_run_id() if job and attempt <= job.retries.attempts
                and not store.cancel_requested(run_id)
                and not check(job.params, record.params or {})[1] else None)  # params fit
    # the retry's id on the failed record, in the same write: a workflow's node follows it
    fields = {"state": "FAILURE", "finished": time.time(), "error": why}
    ended = store.end_run(run_id, {**fields, **({"retried_as": retry_id} if retry_id else {})},
                          ACTIVE)
    # its live output, which its process did not delete (also when it ended: it died between
    # its final write and that delete)
    output.drop(store, run_id)
    if not ended or job is None or retry_id is None:
        return None
    child = {"parent": record.parent, "node": record.node} if record.parent else {}
    return enqueue(app, store, config, job.name, f"retry-of {run_id}", record.limit,
                   retry_of=run_id, schedule=record.schedule,
                   scheduled_for=record.scheduled_for,
                   extra={"attempt": attempt + 1, **child}, run_id=retry_id,
                   params=record.params)


def wait(store: Store, run_id: str, deadline: float | None = None) -> RunRecord:
    """Polls the run's record until it is final."""
    while True:
        record = store.run(run_id) or RunRecord.from_json({})
        if record.state not in ACTIVE:
            return record
        if deadline is not None and time.monotonic() > deadline:
            raise UsageError(f"run {run_id} did not finish in time (state "
                             f"{record.state})")
        time.sleep(0.1)
