"""How a run is queued (its PENDING record, then its message), sent again, cancelled and
retried; of a job or of a workflow (issue 20).

A workflow run is queued like a job's: its record carries a fresh WorkflowRun (`workflow`)
and its message, the same task under the workflow's name, goes to the queue of its first job
node's job; the worker that takes it starts coordinating it (coordinate.py). A child run is
an ordinary run of its node's job with `parent` and `node` set; its message names the parent
so that the worker advances the workflow right after the child's final save."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from celery import Celery

from runner import workflow as wf
from runner.celery.message import TASK, time_limit
from runner.config.model import ConfigSet, Job
from runner.config.params import ParamsInvalid, resolve
from runner.config.query import lookup, select, waits
from runner.errors import StoreUnavailable, UsageError
from runner.runs import ACTIVE, RunRecord, RunState, new_run_id
from runner.store import Store
from runner.store.outage import connection_error


def entry_job(config: ConfigSet, name: str) -> Job | None:
    """The job whose queue a run of `name` goes to: the job itself, or the first job node of
    the workflow `name` (in run order); None when there is neither."""
    if name in config.jobs:
        return config.jobs[name]
    flow = config.workflows.get(name)
    if flow is None:
        return None
    nodes = {n.name: n for n in flow.nodes}
    first = next((nodes[n].job for n in wf.topological(flow) if nodes[n].job), None)
    return config.jobs.get(first) if first else None


def enqueue(app: Celery, store: Store, config: ConfigSet, name: str, trigger: str,
            limit: str | None = None, retry_of: str | None = None,
            schedule: str | None = None, scheduled_for: str | None = None,
            extra: dict[str, Any] | None = None, run_id: str | None = None,
            params: Mapping[str, Any] | None = None) -> str:
    """Queues a run (its record, then its message); `extra` fields join its first record
    (e.g. the API's `actions`); `run_id`: one chosen before (beat's hand-off); `params`:
    values for the job's params (ParamsInvalid, before anything is written, if wrong)."""
    record = RunRecord.from_json(pending(config, name, trigger, limit, retry_of, schedule,
                                         scheduled_for, extra, run_id, params))
    store.save_run(record)
    try:
        send(app, config, record)
    except StoreUnavailable as e:  # beat's hand-off sends again; a caller here is told
        rid = record.run_id
        raise StoreUnavailable(f"{e}; run {rid} of {name} was not queued "
                               f"({unqueued(store, rid, str(e))})") from None
    return record.run_id


def pending(config: ConfigSet, name: str, trigger: str, limit: str | None = None,
            retry_of: str | None = None, schedule: str | None = None,
            scheduled_for: str | None = None, extra: dict[str, Any] | None = None,
            run_id: str | None = None, params: Mapping[str, Any] | None = None
            ) -> dict[str, Any]:
    """The first record of a run to queue (state PENDING), as JSON (beat's outbox holds it).
    `name` may be a workflow's: its record holds the workflow run, every node pending (or
    `extra`'s "workflow": a partial retry's), and no targets (its children have theirs).
    A job's `params` are checked and completed with its defaults (ParamsInvalid)."""
    flow = config.workflows.get(name)
    job = entry_job(config, name) if flow else lookup(config, name)
    if job is None:
        raise UsageError(f"workflow {name!r} has no job node to start with")
    first = {"workflow": wf.new_run(flow, config.revision).to_json()} if flow else {}
    if flow and params:
        raise ParamsInvalid(f"{name} is a workflow: it takes no parameters; its nodes give "
                            "their jobs' params in workflows.d")
    values = None if flow else resolve(name, job.params, params)
    if values is not None:
        first["params"] = values
    return {"run_id": run_id or new_run_id(), "job": name, "revision": config.revision,
            "trigger": trigger, "state": "PENDING", "queue": job.queue,
            "targets": [] if flow else select(config, job, limit), "limit": limit,
            "created": time.time(), "retry_of": retry_of, "schedule": schedule,
            "scheduled_for": scheduled_for, **first, **(extra or {})}


def send(app: Celery, config: ConfigSet, record: RunRecord) -> None:
    """Sends the message of the PENDING run `record` (again: the same task id; a worker
    never starts a run twice)."""
    name, run_id = str(record.job), record.run_id
    job = config.jobs.get(name)  # removed since: the worker ends it with the reason
    hard = None
    if job:  # its wait for cluster-wide slots must not use up its work's time (limits.Gate)
        targets = list(record.targets or ())
        wait = app.conf.runner_system.settings.limit_wait_max if waits(config, job, targets) \
            else 0
        hard = time_limit(job, len(targets), wait)
    kwargs: dict[str, Any] = {"job": name, "revision": record.revision, "run_id": run_id,
              "limit": record.limit}
    if record.parent:  # a workflow's child: its worker advances the workflow after it
        kwargs["parent"] = record.parent
    if record.params is not None:  # only in its environment, RUNNER_PARAM_<NAME>
        kwargs["params"] = record.params
    try:
        app.send_task(TASK, kwargs=kwargs,
                      task_id=run_id, shadow=name, soft_time_limit=hard and hard - 30,
                      time_limit=hard)
    except Exception as e:  # kombu's, after Celery's publish retries, or redis-py's
        if connection_error(e):
            raise StoreUnavailable(f"the broker is unavailable: {e}") from None
        raise


def unqueued(store: Store, run_id: str, why: str) -> str:
    """The PENDING record of a run whose message could not be sent ends FAILURE, or, when
    that cannot be written either (a full disk), is taken back: what became of it."""
    try:
        store.end_run(run_id, {"state": "FAILURE", "finished": time.time(),
                               "error": f"its message could not be queued: {why}"},
                      ("PENDING",))
        return "recorded FAILURE"
    except StoreUnavailable:
        pass
    try:
        store.withdraw(run_id)
        return "its record was removed"
    except StoreUnavailable:
        return "its record stays PENDING until the store can be written"


def cancel(app: Celery, store: Store, run_id: str, by: str) -> RunRecord:
    """`by` names who asked (`runner cancel (user U)`, `NAME via the API`) in the reason."""
    record = store.run(run_id)
    if record is None:
        raise UsageError(f"there is no run {run_id!r} (runner history lists them)")
    if record.state not in ACTIVE:
        raise UsageError(f"run {run_id} is already {record.state}; nothing to cancel")
    store.request_cancel(run_id, by)
    app.control.revoke(run_id)
    fields = {"state": "REVOKED", "finished": time.time(),
              "error": f"cancelled by {by} before it started"}
    queued = (RunState.PENDING, RunState.RECEIVED)
    if record.state in queued and store.end_run(run_id, fields, queued):  # not begun since:
        record = record.updated(fields)  # a run begun meanwhile sees the flag itself
    return record


def retry(app: Celery, store: Store, config: ConfigSet, run_id: str,
          extra: dict[str, Any] | None = None) -> str:
    record = store.run(run_id)
    if record is None:
        raise UsageError(f"there is no run {run_id!r} (runner history lists them)")
    flow = config.workflows.get(str(record.job))
    if record.workflow is not None and flow is not None:  # a partial rerun of its nodes
        again = wf.retry(flow, wf.WorkflowRun.from_json(record.workflow))
        extra = {**(extra or {}), "workflow": again.to_json()}
    return enqueue(app, store, config, str(record.job), f"retry-of {run_id}",
                   record.limit, retry_of=run_id, extra=extra, params=record.params)


