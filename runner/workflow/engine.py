"""What a workflow run does next: a pure function of its workflow, its record and the time.

The runtime calls advance after any event (a child ended, an approval, a timer), from any
process; a decision is written with a compare-and-set on the record, so a node that the
decision starts is started once: whoever loses the race reads the new record, and advance of
that decides nothing new.

When a node may start: once every node of its `after` has ended (a root at once), and then
  on_success  if all of `after` succeeded (else it is skipped)
  on_failure  if any of `after` failed or was cancelled (skipped does not count: a node that
              never ran did not fail; if none failed it is skipped)
  always      whatever they ended with.
A job node starts a child run; an approval node waits for an operator and fails (decision
"timed out") once its `timeout` has passed since it was opened. The run ends when no node
runs, waits or can still start: "success" if every node that ran succeeded, else "failed";
"cancelled" if it was cancelled."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from runner.config.model import Node, Workflow
from runner.workflow.records import (
    NodeRun,
    NodeState,
    Result,
    WorkflowError,
    WorkflowRun,
    outcome,
)

TIMED_OUT = "timed out"


@dataclass(frozen=True)
class Decision:
    """What to do now. Each tuple is in the order the nodes are written."""

    start: tuple[str, ...] = ()   # job nodes whose child run starts now
    open: tuple[str, ...] = ()    # approval nodes that now wait for an operator
    skip: tuple[str, ...] = ()    # nodes whose condition cannot hold any more
    expire: tuple[str, ...] = ()  # approvals whose timeout passed: they fail, "timed out"
    ended: bool = False           # the run has ended once this decision is applied
    result: Result | None = None  # then how
    wake_at: float | None = None  # the next approval timeout: call advance again then

    @property
    def empty(self) -> bool:
        """Does it change nothing in the record?"""
        return not (self.start or self.open or self.skip or self.expire)


def new_run(workflow: Workflow, revision: str | None) -> WorkflowRun:
    """A workflow run before anything started: every node pending."""
    return WorkflowRun(workflow.name, revision, {n.name: NodeRun() for n in workflow.nodes})


def topological(workflow: Workflow) -> tuple[str, ...]:
    """The node names, each after all of its `after`; ties in the order written."""
    names = {n.name for n in workflow.nodes}
    for node in workflow.nodes:
        unknown = [a for a in node.after if a not in names]
        if unknown:
            raise WorkflowError(f"node {node.name!r} of workflow {workflow.name!r} runs after "
                                f"{unknown[0]!r}, which is not a node of it")
    done: list[str] = []
    left = list(workflow.nodes)
    while left:
        ready = next((n for n in left if set(n.after) <= set(done)), None)
        if ready is None:
            raise WorkflowError(f"workflow {workflow.name!r} has a cycle among the nodes "
                                f"{', '.join(n.name for n in left)}")
        done.append(ready.name)
        left.remove(ready)
    return tuple(done)


def verdict(node: Node, states: Mapping[str, NodeState]) -> bool | None:
    """May the node start (True), can it never (False), or not yet known (None)?"""
    before = [states[a] for a in node.after]
    if not all(s.finished for s in before):
        return None
    if node.when == "always":
        return True
    if node.when == "on_failure":
        return any(s in (NodeState.FAILED, NodeState.CANCELLED) for s in before)
    return all(s is NodeState.SUCCESS for s in before)


def advance(workflow: Workflow, run: WorkflowRun, now: float) -> Decision:
    """What to do now: the nodes that start, open, are skipped or expire, followed through the
    graph (a skip or an expiry decides the nodes after it at once), and whether the run ends.
    A cancelled run starts and opens nothing. A pending node of the record that `workflow`
    no longer has is skipped."""
    nodes = {n.name: n for n in workflow.nodes}
    states = {name: run.node(name).state for name in nodes}
    moves: dict[str, list[str]] = {"start": [], "open": [], "skip": [], "expire": []}
    deadlines: list[float] = []
    for name in topological(workflow):
        node, state = nodes[name], states[name]
        if state is NodeState.APPROVAL:
            deadline = _deadline(node, run.node(name))
            if deadline is not None and now >= deadline:
                moves["expire"].append(name)
                states[name] = NodeState.FAILED
            elif deadline is not None:
                deadlines.append(deadline)
        elif state is NodeState.PENDING and not run.cancelled:
            go = verdict(node, states)
            if go is False:
                moves["skip"].append(name)
                states[name] = NodeState.SKIPPED
            elif go and node.approval is not None:
                moves["open"].append(name)
                states[name] = NodeState.APPROVAL
                if node.timeout is not None:
                    deadlines.append(now + node.timeout)
            elif go:
                moves["start"].append(name)
                states[name] = NodeState.RUNNING
    gone = [n for n, r in run.nodes.items() if n not in nodes and r.state is NodeState.PENDING]
    if not run.cancelled:  # removed from the workflow since: nothing decides them any more
        moves["skip"] += gone
        states.update(dict.fromkeys(gone, NodeState.SKIPPED))
    order = [*nodes, *gone]
    result = outcome({**run.states(), **states}, run.cancelled)
    start, open_, skip, expire = (tuple(sorted(v, key=order.index)) for v in moves.values())
    return Decision(start, open_, skip, expire, result is not None, result,
                    min(deadlines, default=None))


def _deadline(node: Node, state: NodeRun) -> float | None:
    if node.timeout is None or state.started_at is None:
        return None
    return state.started_at + node.timeout


def apply(run: WorkflowRun, decision: Decision, started: Mapping[str, str],
          now: float) -> WorkflowRun:
    """The run with `decision` carried out at `now`; `started` names the child run of each
    node it starts (the runtime makes them, and sends them once this record is written)."""
    missing = [n for n in decision.start if n not in started]
    if missing:
        raise WorkflowError(f"node {missing[0]!r} of workflow run {run.workflow!r} starts "
                            "without a child run id")
    stale = [n for n in (*decision.start, *decision.open, *decision.skip)
             if run.node(n).state is not NodeState.PENDING]
    stale += [n for n in decision.expire if run.node(n).state is not NodeState.APPROVAL]
    if stale:
        raise WorkflowError(f"node {stale[0]!r} of workflow run {run.workflow!r} is "
                            f"{run.node(stale[0]).state}: the decision was made on an older "
                            "record; call advance on this one")
    changes: dict[str, NodeRun] = {}
    for name in decision.start:
        changes[name] = replace(run.node(name), state=NodeState.RUNNING, run_id=started[name],
                                started_at=now)
    for name in decision.open:
        changes[name] = replace(run.node(name), state=NodeState.APPROVAL, started_at=now)
    for name in decision.skip:
        changes[name] = replace(run.node(name), state=NodeState.SKIPPED, ended_at=now)
    for name in decision.expire:
        changes[name] = replace(run.node(name), state=NodeState.FAILED, ended_at=now, at=now,
                                decision=TIMED_OUT)
    return run.with_nodes(changes)
