"""A workflow run's record: the state of each of its nodes, as the store will hold it (issue 20).

Pure: no I/O, no clock (every time is an argument, in Unix seconds)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, Literal

from runner.errors import UsageError

Result = Literal["success", "failed", "cancelled"]


class WorkflowError(UsageError):
    """A workflow run was asked something it cannot do (approve a node that waits for no
    approval, retry a run still going, a record or a graph that cannot be read)."""


class NodeState(StrEnum):
    """Where a node of a workflow run is; equal to (and stored as) its name."""

    PENDING = "pending"      # not decidable yet: a node of its `after` has not ended
    RUNNING = "running"      # its child run was started
    APPROVAL = "approval"    # waiting for an operator
    SUCCESS = "success"      # its child run succeeded, or it was approved
    FAILED = "failed"        # its child run failed, or it was rejected or timed out
    SKIPPED = "skipped"      # its condition cannot hold any more: it never ran
    CANCELLED = "cancelled"  # its child run was cancelled, or its workflow run before it started

    @property
    def finished(self) -> bool:
        """Has the node ended (it will not change until a retry)?"""
        return self in (NodeState.SUCCESS, NodeState.FAILED, NodeState.SKIPPED,
                        NodeState.CANCELLED)


@dataclass(frozen=True)
class NodeRun:
    """One node of a workflow run. A job node points at its child run (run_id); an approval
    node records the operator's decision ("approved", "rejected", "timed out"), by whom,
    when and why. `attempt` counts from 1 and grows with each partial retry that reruns it."""

    state: NodeState = NodeState.PENDING
    run_id: str | None = None
    attempt: int = 1
    started_at: float | None = None  # the child run started, or the approval was opened
    ended_at: float | None = None
    by: str | None = None
    at: float | None = None
    comment: str | None = None
    decision: str | None = None
    server: str | None = None  # the store's server when its child started (Store.server)

    def to_json(self) -> dict[str, Any]:
        """Its JSON object: the fields set (state and attempt always)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NodeRun:
        """The node of a JSON object; a missing field takes its default, an unknown one is
        dropped."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known and v is not None}
        state = values.pop("state", NodeState.PENDING)
        try:
            return cls(state=NodeState(state), **values)
        except ValueError:
            raise WorkflowError(f"a workflow node has the unknown state {state!r}; one of "
                                f"{', '.join(NodeState)} was expected") from None


@dataclass(frozen=True)
class WorkflowRun:
    """A workflow run: its workflow's name, the configuration revision it runs at, its nodes
    by name (in the order written; a node missing is pending) and whether it was cancelled."""

    workflow: str
    revision: str | None = None
    nodes: Mapping[str, NodeRun] = field(default_factory=dict)
    cancelled: bool = False

    def node(self, name: str) -> NodeRun:
        """The node of that name (pending at attempt 1 if the record does not have it)."""
        return self.nodes.get(name) or NodeRun()

    def with_nodes(self, changes: Mapping[str, NodeRun]) -> WorkflowRun:
        """This run with the nodes of `changes` replaced (the order kept)."""
        return WorkflowRun(self.workflow, self.revision, {**self.nodes, **changes},
                           self.cancelled)

    def states(self) -> dict[str, NodeState]:
        return {name: n.state for name, n in self.nodes.items()}

    def running(self) -> tuple[str, ...]:
        """The child runs still going, in the order of their nodes."""
        return tuple(n.run_id for n in self.nodes.values()
                     if n.state is NodeState.RUNNING and n.run_id is not None)

    def to_json(self) -> dict[str, Any]:
        return {"workflow": self.workflow, "revision": self.revision,
                "cancelled": self.cancelled,
                "nodes": {name: n.to_json() for name, n in self.nodes.items()}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WorkflowRun:
        """The run of a JSON object; missing fields take their defaults."""
        nodes = data.get("nodes") or {}
        return cls(str(data.get("workflow") or ""), data.get("revision"),
                   {str(k): NodeRun.from_json(v or {}) for k, v in nodes.items()},
                   bool(data.get("cancelled", False)))


def outcome(states: Mapping[str, NodeState], cancelled: bool) -> Result | None:
    """None while a node runs or waits for an operator (or, not cancelled, may still run);
    then "cancelled" if the run was cancelled, "success" if every node that ran (not
    skipped) succeeded, else "failed"."""
    values = set(states.values())
    if values & {NodeState.RUNNING, NodeState.APPROVAL}:
        return None
    if cancelled:
        return "cancelled"
    if NodeState.PENDING in values:
        return None
    return "success" if values <= {NodeState.SUCCESS, NodeState.SKIPPED} else "failed"
