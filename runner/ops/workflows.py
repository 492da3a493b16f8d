"""Workflow runs from outside (issue 20): an operator's approve or reject of an approval node,
and the approvals waiting for one (runner status, the API)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from runner import workflow as wf
from runner.celery import coordinate
from runner.config.model import ConfigSet
from runner.errors import RunnerError, UsageError
from runner.ops.runs import Load
from runner.runs import RunRecord, RunState
from runner.store import Store, keys


class NotWaiting(RunnerError):
    """The node is not waiting for an approval (it was decided, timed out, or never opened):
    the checked thing failed, exit 1."""

    exit_code = 1


class Busy(RunnerError):
    """The workflow run's lock is held (an advance is under way): try again."""


class NoSuchNode(UsageError):
    """There is no workflow run of that id, or it has no node of that name."""


@dataclass(frozen=True)
class Approval:
    """An approval node waiting for an operator."""

    run_id: str
    workflow: str
    node: str
    question: str
    since: float | None
    timeout_at: float | None


def approve(store: Store, load: Load, run_id: str, node: str,
            yes: bool, by: str, comment: str | None = None,
            action: dict[str, Any] | None = None) -> RunRecord:
    """Approves (`yes`) or rejects the approval `node` of workflow run `run_id` as `by`, with
    `comment`; `action` (who asked, via what) joins the record's `actions` in the same write;
    the workflow goes on at once: its record after. Under the run's lock, so a decision and a
    timeout (or two operators) never both count. `load` is called once the node is known to
    wait: an unknown run or node is refused whatever the configuration."""
    who = coordinate.owner()
    if not coordinate.locked(store, keys.workflow(run_id), who):
        raise Busy(f"workflow run {run_id} is busy (its lock is held); try again")
    try:
        record = store.run(run_id)
        if record is None or record.workflow is None:
            raise NoSuchNode(f"there is no workflow run {run_id!r} (runner history lists "
                             "runs; a workflow run's job is its workflow's name)")
        run = wf.WorkflowRun.from_json(record.workflow)
        if node not in run.nodes:
            raise NoSuchNode(f"workflow run {run_id} ({run.workflow}) has no node {node!r} "
                             f"(it has {', '.join(run.nodes)})")
        if record.state != RunState.STARTED:
            raise NotWaiting(f"workflow run {run_id} is {record.state}: node {node} waits "
                             "for nothing")
        try:
            run = wf.decide_approval(run, node, yes, by, comment, time.time())
        except wf.WorkflowError as e:
            raise NotWaiting(str(e)) from None
        app, config = load()
        late = _timed_out(config, run, node)
        change: dict[str, Any] = {"workflow": run.to_json()}
        if action:
            change["actions"] = [*(record.actions or ()), action]
        if not late:
            store.update_run(run_id, change)
    finally:
        coordinate.release(store, keys.workflow(run_id), who)
    record = coordinate.advance(store, app, config, run_id) or record  # expires a late one
    if late:
        raise NotWaiting(f"node {node} of workflow run {run_id} timed out {late} before "
                         "this decision: it counts as rejected")
    return record


def _timed_out(config: ConfigSet, run: wf.WorkflowRun, node: str) -> str | None:
    """How long ago the approval `node` timed out ("12s"), or None while it may be decided."""
    flow = config.workflows.get(run.workflow)
    spec = next((n for n in flow.nodes if n.name == node), None) if flow else None
    opened = run.node(node).started_at
    if spec is None or spec.timeout is None or opened is None:
        return None
    past = time.time() - (opened + spec.timeout)
    return f"{past:.0f}s" if past >= 0 else None


def waiting(store: Store, config: ConfigSet) -> list[Approval]:
    """The approval nodes waiting for an operator, oldest run first."""
    found = []
    for run_id in coordinate.active(store):
        record = store.run(run_id)
        if record is None or record.workflow is None or record.state != RunState.STARTED:
            continue
        run = wf.WorkflowRun.from_json(record.workflow)
        flow = config.workflows.get(run.workflow)
        nodes = {n.name: n for n in flow.nodes} if flow else {}
        for name, n in run.nodes.items():
            if n.state is wf.NodeState.APPROVAL:
                spec = nodes.get(name)
                timeout = spec.timeout if spec else None
                found.append(Approval(run_id, run.workflow, name,
                                      (spec.approval if spec else None) or "",
                                      n.started_at, timeout and n.started_at and
                                      n.started_at + timeout))
    return found
