"""The facts that change a workflow run from outside: a child run ended, an operator decided,
the run was cancelled, or retried. Each returns the new record; the runtime writes it with a
compare-and-set and then calls advance."""

from __future__ import annotations

from dataclasses import replace

from runner.config.model import Workflow
from runner.workflow.engine import topological
from runner.workflow.records import NodeRun, NodeState, WorkflowError, WorkflowRun, outcome

ENDINGS = (NodeState.SUCCESS, NodeState.FAILED, NodeState.CANCELLED)


def finish_node(run: WorkflowRun, node: str, state: NodeState, now: float,
                run_id: str | None = None) -> WorkflowRun:
    """The run once the child run of `node` ended with `state` (success, failed, cancelled).
    A report for a node already ended, or (given `run_id`) for a child of another attempt,
    changes nothing: the first report counts, and reports may come twice."""
    if state not in ENDINGS:
        raise WorkflowError(f"a child run ends success, failed or cancelled, not {state}")
    current = _node(run, node)
    if current.state.finished or (run_id is not None and run_id != current.run_id):
        return run
    if current.state is not NodeState.RUNNING:
        raise WorkflowError(f"node {node!r} of workflow run {run.workflow!r} has no child "
                            f"run to end: it is {current.state}")
    return run.with_nodes({node: replace(current, state=state, ended_at=now)})


def decide_approval(run: WorkflowRun, node: str, approve: bool, by: str,
                    comment: str | None, now: float) -> WorkflowRun:
    """The run once `by` approved (success) or rejected (failed) the approval `node`."""
    current = _node(run, node)
    if current.state is not NodeState.APPROVAL:
        raise WorkflowError(f"node {node!r} of workflow run {run.workflow!r} is not waiting "
                            f"for an approval: it is {current.state}")
    decided = replace(current, state=NodeState.SUCCESS if approve else NodeState.FAILED,
                      decision="approved" if approve else "rejected", by=by, at=now,
                      comment=comment, ended_at=now)
    return run.with_nodes({node: decided})


def cancel(run: WorkflowRun, now: float) -> tuple[WorkflowRun, tuple[str, ...]]:
    """The run cancelled: its pending nodes and open approvals are cancelled, no node starts
    any more; and the child runs still going, for the runtime to cancel (their nodes end
    when their runs report it). Cancelling again returns them again."""
    if outcome(run.states(), run.cancelled) is not None:
        raise WorkflowError(f"workflow run {run.workflow!r} has ended: nothing to cancel")
    changes = {name: replace(n, state=NodeState.CANCELLED, ended_at=now)
               for name, n in run.nodes.items()
               if n.state in (NodeState.PENDING, NodeState.APPROVAL)}
    return replace(run.with_nodes(changes), cancelled=True), run.running()


def retry(workflow: Workflow, run: WorkflowRun) -> WorkflowRun:
    """The record of a partial rerun of an ended, unsuccessful run: the nodes that failed
    (rejected and timed-out approvals too: they are asked again) or were cancelled, and the
    skipped ones after them, are pending again at their next attempt; every other node is
    kept as it ended (a successful node is not run again, nor a node skipped for another
    reason). The nodes are `workflow`'s: a node it added is pending, one it removed gone."""
    result = outcome(run.states(), run.cancelled)
    if result is None:
        raise WorkflowError(f"workflow run {run.workflow!r} is still going: cancel it or let "
                            "it end before a retry")
    if result == "success":
        raise WorkflowError(f"workflow run {run.workflow!r} succeeded: nothing to retry")
    after = {n.name: n.after for n in workflow.nodes}
    again: set[str] = set()
    nodes: dict[str, NodeRun] = {}
    for name in topological(workflow):
        old = run.node(name)
        rerun = old.state in (NodeState.FAILED, NodeState.CANCELLED) or (
            old.state is NodeState.SKIPPED and any(a in again for a in after[name]))
        if rerun or old.state is NodeState.PENDING:
            again.add(name)
        nodes[name] = NodeRun(attempt=old.attempt + 1) if rerun else old
    ordered = {n.name: nodes[n.name] for n in workflow.nodes}
    return WorkflowRun(workflow.name, run.revision, ordered)


def _node(run: WorkflowRun, node: str) -> NodeRun:
    if node not in run.nodes:
        raise WorkflowError(f"workflow run {run.workflow!r} has no node {node!r} (it has "
                            f"{', '.join(run.nodes) or 'none'})")
    return run.nodes[node]
