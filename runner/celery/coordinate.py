"""Coordinating a workflow run (issue 20): the engine (runner/workflow) moved by the store.

No process holds a workflow run in memory. advance(), under a lock per workflow run, reads
its record, folds in the final states of its children, asks the engine what to do, and does
it in an order that survives a crash at any point: FIRST the workflow record is written with
each node to start running and its chosen child run id, THEN the child's PENDING record is
saved and its message sent. The next advance finds a running node whose child record is
missing and creates it (a cancelled run, or a node the workflow no longer has as a job
node, cancels that node instead: it never ran; one whose node started on another store
server, lost in a failover, fails that node: it may have run there); a child recorded but
never sent is sent again by the reaper; a duplicate message runs nothing (begin_run). So a
node never starts twice.
Before each write (the record, each child), advance renews its lock: one that stalled past
HOLD, its lock taken by another advancer meanwhile, writes and sends nothing more (its
decision was made on an older record; the holder creates the children left).

Who calls it: the worker that began the workflow run, and the worker of a child right after
the child's final save; beat's reaper every ~2 s over the active workflow runs (the
`workflows` entry: nothing to do when there are none), which resumes after any crash, times
out approvals and follows a child the reaper buried (and its automatic retry,
`retried_as`); approve/reject and cancel right after writing. A cancel is the run's cancel
flag (tasks.cancel, as for any run): advance cancels the running children and starts no node.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from celery import Celery

from runner import workflow as wf
from runner.celery.queueing import cancel, enqueue, pending
from runner.config.model import ConfigSet, Node, Workflow
from runner.errors import RunnerError, UsageError
from runner.runs import FINAL, RunRecord, RunState, new_run_id
from runner.store import Store, keys
from runner.workflow.records import outcome

HOLD = 15.0  # seconds a coordinator's lock lasts if its process dies holding it
WAIT = 3.0   # seconds a caller waits for the lock before leaving it to its holder and beat
ENDS = {"success": RunState.SUCCESS, "failed": RunState.FAILURE,
        "cancelled": RunState.REVOKED}
CHILD = {RunState.SUCCESS: wf.NodeState.SUCCESS, RunState.REVOKED: wf.NodeState.CANCELLED}
log = logging.getLogger("runner.coordinate")


def owner() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{threading.get_ident()}"


def locked(store: Store, name: str, who: str, wait: float = WAIT) -> bool:
    """Takes the lock `name` for `who`, polling up to `wait` seconds: whether it did."""
    give_up = time.monotonic() + wait
    while not store.lock(name, who, HOLD):
        if time.monotonic() > give_up:
            return False
        time.sleep(0.02)
    return True


def release(store: Store, name: str, who: str) -> None:
    store.lock(name, who, 0.001)  # a lease that runs out at once


def advance(store: Store, app: Celery, config: ConfigSet, run_id: str) -> RunRecord | None:
    """One step of workflow run `run_id` (see the module): its record after it, or None when
    another process holds its lock for longer than WAIT (that one, or beat, decides)."""
    who = owner()
    if not locked(store, keys.workflow(run_id), who):
        return None
    try:
        return _advance(store, app, config, run_id, who)
    finally:
        release(store, keys.workflow(run_id), who)


def _advance(store: Store, app: Celery, config: ConfigSet, run_id: str,
             who: str) -> RunRecord | None:
    record = store.run(run_id)
    if record is None or record.workflow is None or record.state != RunState.STARTED:
        return record
    now, name = time.time(), str(record.job)
    run = before = wf.WorkflowRun.from_json(record.workflow)
    flow = config.workflows.get(name) or Workflow(name, ())
    asked = store.cancel_requested(run_id)
    why = (f"{asked}" if asked else None if flow.nodes else
           f"the removal of workflow {name} from the configuration")
    run, missing = _fold(store, run, now)  # first: a buried child's retry is cancelled too
    if why and not run.cancelled and outcome(run.states(), False) is None:
        run, children = wf.cancel(run, now)
        for child in children:
            with contextlib.suppress(UsageError):  # it ended meanwhile: folded in below
                cancel(app, store, child, f"{why} (workflow run {run_id})")
        run, missing = _fold(store, run, now)
    nodes = {n.name: n for n in flow.nodes}
    for node in [n for n in missing if run.cancelled or not (n in nodes and nodes[n].job)]:
        run = wf.finish_node(run, node, wf.NodeState.CANCELLED, now)  # it never ran
        missing.remove(node)
    here = store.server() if missing else None
    for node in [n for n in missing if run.node(n).server not in (None, here)]:
        run = _lost(store, config, run_id, run, nodes[node], now)
        missing.remove(node)
    decision = wf.advance(flow, run, now)
    started = {n: new_run_id(now) for n in decision.start}
    if not decision.empty:
        run = wf.apply(run, decision, started, now)
        here = here or store.server()
        run = run.with_nodes({n: replace(run.node(n), server=here) for n in decision.start})
    if (run != before or missing) and not store.lock(keys.workflow(run_id), who, HOLD):
        return None  # its lease ran out meanwhile: the holder now decides on a newer record
    if decision.ended:
        return _end(store, run_id, run, decision.result or "failed", why)
    if run != before:
        store.update_run(run_id, {"workflow": run.to_json()})  # FIRST the record ...
    for node in decision.open:  # the notifier's `approval`: the record says which nodes wait
        store.to_notify(keys.approval(run_id, node, run.node(node).attempt), now)
    for node in (*decision.start, *missing):  # ... THEN each child: record, message
        child_id, job = run.node(node).run_id, nodes[node].job
        if child_id and job:
            if not store.lock(keys.workflow(run_id), who, HOLD):
                break  # its lease ran out: the holder now creates the children left
            enqueue(app, store, config, job, f"workflow {name}", nodes[node].limit,
                    extra={"parent": run_id, "node": node}, run_id=child_id,
                    params=dict(nodes[node].params))
    return store.run(run_id)


def _fold(store: Store, run: wf.WorkflowRun, now: float
          ) -> tuple[wf.WorkflowRun, list[str]]:
    """`run` with the final states of its running nodes' children, following a child the
    reaper buried to its retry; and the running nodes whose child record is missing (not a
    retry named less than HOLD ago: bury saves it right after, and a second save of it by
    the coordinator could overwrite the record its worker just began)."""
    missing = []
    for name, node in run.nodes.items():
        if node.state is not wf.NodeState.RUNNING or node.run_id is None:
            continue
        child, current, buried = store.run(node.run_id), node.run_id, None
        while child is not None and child.retried_as and child.state in FINAL:
            buried, current = child, child.retried_as
            child = store.run(current)
        if child is None and buried and now - float(buried.finished or 0) < HOLD:
            continue  # bury queues the retry right after naming it: not missing yet
        if current != node.run_id:
            run = run.with_nodes({name: replace(node, run_id=current)})
        if child is None:
            missing.append(name)
        elif child.state in FINAL:
            state = CHILD.get(RunState(child.state), wf.NodeState.FAILED)
            run = wf.finish_node(run, name, state, now, current)
    return run, missing


def _lost(store: Store, config: ConfigSet, run_id: str, run: wf.WorkflowRun, node: Node,
          now: float) -> wf.WorkflowRun:
    """`run` with `node` failed: the store lost its child's record in a failover or restart
    (its server changed since the node started). The child may have run on the former
    server, or be running: it is recorded FAILURE with the reason, never queued again."""
    child_id = str(run.node(node.name).run_id)
    why = ("the store lost this run's record in a Redis failover or restart (asynchronous "
           "replication): it may have run on the former server, or never; it is not run "
           "again as it is")
    record = pending(config, str(node.job), f"workflow {run.workflow}", node.limit,
                     extra={"parent": run_id, "node": node.name, "state": RunState.FAILURE,
                            "finished": now, "error": why}, run_id=child_id,
                     params=dict(node.params))
    store.save_run(RunRecord.from_json(record))
    return wf.finish_node(run, node.name, wf.NodeState.FAILED, now, child_id)


def _end(store: Store, run_id: str, run: wf.WorkflowRun, result: str,
         why: str | None) -> RunRecord | None:
    """Ends the workflow run's record with `result` and its nodes; off the active index."""
    failed = [n for n, s in run.states().items() if s is wf.NodeState.FAILED]
    error = (f"cancelled by {why}" if result == "cancelled" else
             f"failed: {', '.join(failed) or 'a node'}" if result == "failed" else None)
    fields = {"state": ENDS[result], "finished": time.time(), "workflow": run.to_json(),
              **({"error": error} if error else {})}
    store.end_run(run_id, fields, (RunState.STARTED,))
    unindex(store, run_id)
    return store.run(run_id)


def index(store: Store, run_id: str) -> None:
    """Adds `run_id` to the active workflow runs that beat follows."""
    _change_index(store, lambda ids: [*ids, run_id] if run_id not in ids else ids)


def unindex(store: Store, run_id: str) -> None:
    _change_index(store, lambda ids: [i for i in ids if i != run_id])


def _change_index(store: Store, change: Callable[[list[str]], list[str]]) -> None:
    who = owner()
    if not locked(store, keys.WORKFLOWS, who, 10 * WAIT):
        raise RunnerError("the index of active workflow runs stayed locked for "
                          f"{10 * WAIT:.0f}s; beat's next look resumes them")
    try:
        ids = list((store.get(keys.WORKFLOWS) or {}).get("runs") or [])
        new = change(ids)
        if new != ids:
            store.put(keys.WORKFLOWS, {"runs": new})
    finally:
        release(store, keys.WORKFLOWS, who)


def active(store: Store) -> list[str]:
    """The ids of the workflow runs going (started, not ended): one read."""
    return [str(i) for i in (store.get(keys.WORKFLOWS) or {}).get("runs") or []]


def follow(app: Celery, store: Store, config: ConfigSet) -> None:
    """Beat's look (every ~2 s): advance each active workflow run; one whose record has
    ended or gone leaves the index. A failure is logged: the next look tries again."""
    for run_id in active(store):
        try:
            record = advance(store, app, config, run_id)
            if record is None:  # its lock is busy, or the record is gone
                record = store.run(run_id)
            if record is None or record.state != RunState.STARTED:
                unindex(store, run_id)
        except RunnerError as e:
            log.warning("workflow run %s: %s; tried again at the next look", run_id, e)
        except Exception:  # a record it cannot read: not a reason to stop beat, nor the others
            log.exception("workflow run %s could not be advanced; tried again at the next "
                          "look", run_id)


def after(app: Celery, config: ConfigSet, store: Store, run_id: str) -> None:
    """advance, from a worker (a workflow run began, or a child of it ended): a failure is
    logged, beat's next look resumes it."""
    try:
        advance(store, app, config, run_id)
    except RunnerError as e:
        log.warning("workflow run %s: %s; beat's next look resumes it", run_id, e)
