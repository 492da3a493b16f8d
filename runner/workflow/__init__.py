"""The workflow engine (issue 20): pure, no I/O and no clock (time is an argument).

records: NodeState, NodeRun, WorkflowRun (to_json/from_json); engine: new_run, topological,
advance (what to do now) and apply (it done); events: finish_node, decide_approval, cancel,
retry (partial rerun). The runtime stores a WorkflowRun, calls advance after any event and
writes apply's record with a compare-and-set, so a node starts exactly once."""

from runner.workflow.engine import Decision, advance, apply, new_run, topological
from runner.workflow.events import cancel, decide_approval, finish_node, retry
from runner.workflow.records import NodeRun, NodeState, WorkflowError, WorkflowRun

__all__ = ["Decision", "NodeRun", "NodeState", "WorkflowError", "WorkflowRun", "advance",
           "apply", "cancel", "decide_approval", "finish_node", "new_run", "retry",
           "topological"]
