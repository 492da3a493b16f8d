"""The workflow engine (issue 20): when nodes start, are skipped or expire, how a workflow run
ends, is cancelled and retried; driven through whole graphs, one fact at a time."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest

from runner.config.model import Node, Workflow
from runner.errors import RunnerError
from runner.workflow import (
    NodeRun,
    NodeState,
    WorkflowError,
    WorkflowRun,
    advance,
    apply,
    cancel,
    decide_approval,
    finish_node,
    new_run,
    retry,
    topological,
)

HOURS4 = 4 * 3600
NIGHTLY = Workflow("nightly-release", (
    Node("build", job="build"),
    Node("test", job="smoke-test", after=("build",)),
    Node("rollback", job="rollback", after=("test",), when="on_failure"),
    Node("approve", approval="Promote to production?", after=("test",), timeout=HOURS4),
    Node("promote", job="promote", after=("approve",), limit="label:env=prod"),
    Node("report", job="notify-team", after=("promote", "rollback"), when="always"),
))
DIAMOND = Workflow("diamond", (
    Node("a", job="j"),
    Node("b", job="j", after=("a",)),
    Node("c", job="j", after=("a",)),
    Node("d", job="j", after=("b", "c")),
))
WAITING = (NodeState.RUNNING, NodeState.APPROVAL)


def step(workflow: Workflow, run: WorkflowRun, now: float, trace: list[str]) -> WorkflowRun:
    """advance and apply once, tracing what was decided; and the decision is final: advance
    on the record it wrote decides nothing new (the idempotence the runtime relies on)."""
    d = advance(workflow, run, now)
    run = apply(run, d, {n: f"{n}#{run.node(n).attempt}" for n in d.start}, now)
    verbs = {n: verb for verb, names in (("start", d.start), ("open", d.open),
                                         ("skip", d.skip), ("expire", d.expire)) for n in names}
    trace += [f"{verbs[n.name]} {n.name}" for n in workflow.nodes if n.name in verbs]
    again = advance(workflow, run, now)
    assert again.empty and (again.ended, again.result) == (d.ended, d.result)
    if d.ended:
        trace.append(f"ended {d.result}")
    return run


def drive(workflow: Workflow, facts: Mapping[str, str],
          run: WorkflowRun | None = None) -> tuple[WorkflowRun, list[str]]:
    """Run the workflow to its end: each time, the first waiting node (in the order written)
    gets its fact: a child's end ("success", "failed", "cancelled"), "approve", "reject", or
    "timeout" (the time moves past its deadline, which advance names as wake_at)."""
    run, now, trace = run or new_run(workflow, "rev1"), 1000.0, list[str]()
    run = step(workflow, run, now, trace)
    while not trace or not trace[-1].startswith("ended"):
        name = next(n for n, s in run.nodes.items() if s.state in WAITING)
        fact, now = facts[name], now + 10
        if fact == "timeout":
            now = advance(workflow, run, now).wake_at or 0
            assert now == (run.node(name).started_at or 0) + HOURS4
        elif fact in ("approve", "reject"):
            run = decide_approval(run, name, fact == "approve", "otto", "ok?", now)
            trace.append(f"{name} {fact.removesuffix('e')}ed")
        else:
            run = finish_node(run, name, NodeState(fact), now)
            trace.append(f"{name} {fact}")
        run = step(workflow, run, now, trace)
    return run, trace


S, F = "success", "failed"
CASES = {
    "nightly succeeds": (NIGHTLY, {"build": S, "test": S, "approve": "approve",
                                   "promote": S, "report": S}, [
        "start build", "build success", "start test", "test success", "skip rollback",
        "open approve", "approve approved", "start promote", "promote success",
        "start report", "report success", "ended success"]),
    "the test fails: rollback runs, promote is skipped, report always runs": (NIGHTLY, {
        "build": S, "test": F, "rollback": S, "report": S}, [
        "start build", "build success", "start test", "test failed", "start rollback",
        "skip approve", "skip promote", "rollback success", "start report",
        "report success", "ended failed"]),
    "the approval is rejected": (NIGHTLY, {"build": S, "test": S, "approve": "reject",
                                           "report": S}, [
        "start build", "build success", "start test", "test success", "skip rollback",
        "open approve", "approve rejected", "skip promote", "start report",
        "report success", "ended failed"]),
    "the approval times out": (NIGHTLY, {"build": S, "test": S, "approve": "timeout",
                                         "report": S}, [
        "start build", "build success", "start test", "test success", "skip rollback",
        "open approve", "expire approve", "skip promote", "start report",
        "report success", "ended failed"]),
    "a diamond joins once both sides ended": (DIAMOND, {"a": S, "b": S, "c": S, "d": S}, [
        "start a", "a success", "start b", "start c", "b success", "c success", "start d",
        "d success", "ended success"]),
    "a diamond with a failed side skips the join": (DIAMOND, {"a": S, "b": F, "c": S}, [
        "start a", "a success", "start b", "start c", "b failed", "c success", "skip d",
        "ended failed"]),
    "a cancelled child counts as failed": (NIGHTLY, {"build": S, "test": "cancelled",
                                                     "rollback": S, "report": F}, [
        "start build", "build success", "start test", "test cancelled", "start rollback",
        "skip approve", "skip promote", "rollback success", "start report", "report failed",
        "ended failed"]),
    "a failed root skips everything on_success after it": (NIGHTLY, {"build": F, "report": F}, [
        "start build", "build failed", "skip test", "skip rollback", "skip approve",
        "skip promote", "start report", "report failed", "ended failed"]),
}


@pytest.mark.parametrize("workflow, facts, expected", CASES.values(), ids=CASES.keys())
def test_a_workflow_run_goes_through_its_graph(workflow: Workflow, facts: dict[str, str],
                                               expected: list[str]) -> None:
    assert drive(workflow, facts)[1] == expected


def test_skipped_is_not_failed_and_roots_decide_at_once() -> None:
    wf = Workflow("w", (
        Node("gate", job="j", when="on_failure"),  # a root on_failure: nothing failed
        Node("cleanup", job="j", after=("gate",), when="on_failure"),  # gate skipped
        Node("audit", job="j", after=("cleanup",), when="always"),
        Node("first", job="j", when="always"),
    ))
    run, trace = drive(wf, {"audit": S, "first": S})
    assert trace == ["skip gate", "skip cleanup", "start audit", "start first",
                     "audit success", "first success", "ended success"]
    assert run.node("audit").run_id == "audit#1"


def test_the_approval_records_who_when_and_why() -> None:
    run, _ = drive(NIGHTLY, {"build": S, "test": S, "approve": "reject", "report": S})
    approve = run.node("approve")
    assert (approve.state, approve.decision, approve.by, approve.comment) == (
        NodeState.FAILED, "rejected", "otto", "ok?")
    assert approve.at == approve.ended_at and (approve.at or 0) > (approve.started_at or 0)
    timed, _ = drive(NIGHTLY, {"build": S, "test": S, "approve": "timeout", "report": S})
    assert (timed.node("approve").decision, timed.node("approve").by) == ("timed out", None)


def test_only_a_node_waiting_for_approval_can_be_decided() -> None:
    run = step(NIGHTLY, new_run(NIGHTLY, "rev1"), 0, [])
    with pytest.raises(WorkflowError, match="'build' of workflow run 'nightly-release' is not "
                       "waiting for an approval: it is running") as e:
        decide_approval(run, "build", True, "otto", None, 1)
    assert isinstance(e.value, RunnerError) and e.value.exit_code == 2
    with pytest.raises(WorkflowError, match="has no node 'nope'"):
        decide_approval(run, "nope", True, "otto", None, 1)


def test_a_repeated_or_stale_child_report_changes_nothing() -> None:
    run = step(NIGHTLY, new_run(NIGHTLY, "rev1"), 0, [])
    assert finish_node(run, "build", NodeState.SUCCESS, 5, run_id="build#0") == run
    done = finish_node(run, "build", NodeState.SUCCESS, 5, run_id="build#1")
    assert done.node("build").state is NodeState.SUCCESS
    assert finish_node(done, "build", NodeState.FAILED, 6) == done
    with pytest.raises(WorkflowError, match="'test' of workflow run 'nightly-release' has no child "
                       "run to end: it is pending"):
        finish_node(done, "test", NodeState.SUCCESS, 6)


def test_a_decision_starts_a_node_once() -> None:
    run = new_run(NIGHTLY, "rev1")
    first, second = advance(NIGHTLY, run, 0), advance(NIGHTLY, run, 0)
    assert first == second and first.start == ("build",)  # a pure function of the record
    applied = apply(run, first, {"build": "r1"}, 0)
    assert advance(NIGHTLY, applied, 50).empty
    with pytest.raises(WorkflowError, match="'build' of workflow run 'nightly-release' is "
                       "running: the decision was made on an older record"):
        apply(applied, second, {"build": "r2"}, 0)  # the loser of the compare-and-set
    with pytest.raises(WorkflowError, match="'build' of workflow run 'nightly-release' starts "
                       "without a child run id"):
        apply(run, first, {}, 0)


def test_cancel_mid_graph_starts_nothing_more_and_names_the_running_children() -> None:
    trace: list[str] = []
    run = step(DIAMOND, new_run(DIAMOND, "rev1"), 0, trace)
    run = step(DIAMOND, finish_node(run, "a", NodeState.SUCCESS, 1), 1, trace)
    run = step(DIAMOND, finish_node(run, "b", NodeState.SUCCESS, 2), 2, trace)
    cancelled, children = cancel(run, 3)
    assert children == ("c#1",) and cancel(cancelled, 4)[1] == ("c#1",)
    assert cancelled.node("d").state is NodeState.CANCELLED
    assert not advance(DIAMOND, cancelled, 3).ended  # c's run has not said it ended
    ended = step(DIAMOND, finish_node(cancelled, "c", NodeState.SUCCESS, 5), 5, trace)
    assert trace == ["start a", "start b", "start c", "ended cancelled"]
    assert ended.node("c").state is NodeState.SUCCESS
    with pytest.raises(WorkflowError, match="has ended: nothing to cancel"):
        cancel(ended, 6)


def test_cancel_closes_an_open_approval() -> None:
    run, trace = new_run(NIGHTLY, "rev1"), list[str]()
    for name in ("build", "test"):
        run = step(NIGHTLY, run, 0, trace)
        run = finish_node(run, name, NodeState.SUCCESS, 1)
    run = step(NIGHTLY, run, 1, trace)
    assert run.node("approve").state is NodeState.APPROVAL
    cancelled, children = cancel(run, 2)
    assert children == () and cancelled.node("approve").state is NodeState.CANCELLED
    assert step(NIGHTLY, cancelled, 2, trace) and trace[-1] == "ended cancelled"


def test_a_partial_retry_reruns_only_what_failed_and_what_it_skipped() -> None:
    failed, _ = drive(NIGHTLY, {"build": S, "test": F, "rollback": S, "report": S})
    again = retry(NIGHTLY, failed)
    assert {n: (s.state.value, s.attempt, s.run_id) for n, s in again.nodes.items()} == {
        "build": ("success", 1, "build#1"), "test": ("pending", 2, None),
        "rollback": ("success", 1, "rollback#1"), "approve": ("pending", 2, None),
        "promote": ("pending", 2, None), "report": ("success", 1, "report#1")}
    run, trace = drive(NIGHTLY, {"test": S, "approve": "approve", "promote": S}, again)
    assert trace == ["start test", "test success", "open approve", "approve approved",
                     "start promote", "promote success", "ended success"]
    assert run.node("test").run_id == "test#2"


def test_a_retry_asks_a_rejected_approval_again_and_keeps_skips_of_successes() -> None:
    rejected, _ = drive(NIGHTLY, {"build": S, "test": S, "approve": "reject", "report": S})
    again = retry(NIGHTLY, rejected)
    assert again.node("approve") == NodeRun(attempt=2)  # the old decision stays on the old run
    assert again.node("rollback").state is NodeState.SKIPPED  # test succeeded: still skipped
    assert again.node("promote") == NodeRun(attempt=2)
    cancelled, _ = cancel(step(NIGHTLY, new_run(NIGHTLY, "rev1"), 0, []), 1)
    ended = finish_node(cancelled, "build", NodeState.CANCELLED, 2)
    assert all(n == NodeRun(attempt=2) for n in retry(NIGHTLY, ended).nodes.values())


def test_only_an_ended_unsuccessful_run_is_retried() -> None:
    with pytest.raises(WorkflowError, match="is still going"):
        retry(NIGHTLY, step(NIGHTLY, new_run(NIGHTLY, "rev1"), 0, []))
    done, _ = drive(DIAMOND, {"a": S, "b": S, "c": S, "d": S})
    with pytest.raises(WorkflowError, match="succeeded: nothing to retry"):
        retry(DIAMOND, done)


def test_topological_order_keeps_the_written_order_among_ties() -> None:
    assert topological(NIGHTLY) == ("build", "test", "rollback", "approve", "promote",
                                     "report")
    written = Workflow("w", (Node("late", job="j", after=("b",)), Node("b", job="j"),
                             Node("c", job="j"), Node("d", job="j", after=("late", "c"))))
    assert topological(written) == ("b", "late", "c", "d")
    loop = Workflow("w", (Node("x", job="j", after=("y",)), Node("y", job="j", after=("x",)),
                          Node("z", job="j")))
    with pytest.raises(WorkflowError, match="a cycle among the nodes x, y"):
        topological(loop)
    with pytest.raises(WorkflowError, match="runs after 'ghost', which is not a node of it"):
        topological(Workflow("w", (Node("x", job="j", after=("ghost",)),)))


def test_the_record_comes_back_from_json_and_reads_missing_fields_as_defaults() -> None:
    run, _ = drive(NIGHTLY, {"build": S, "test": S, "approve": "reject", "report": S})
    mid = cancel(step(DIAMOND, new_run(DIAMOND, "rev2"), 0, []), 1)[0]
    for record in (run, mid):
        assert WorkflowRun.from_json(json.loads(json.dumps(record.to_json()))) == record
    assert run.to_json()["nodes"]["approve"]["decision"] == "rejected"
    sparse = WorkflowRun.from_json({"workflow": "w", "nodes": {"a": {}, "b": {"state": "running",
                                                                         "run_id": "r"}}})
    assert sparse == WorkflowRun("w", None, {"a": NodeRun(), "b": NodeRun(
        NodeState.RUNNING, "r")}, False)
    with pytest.raises(WorkflowError, match="unknown state 'paused'"):
        WorkflowRun.from_json({"workflow": "w", "nodes": {"a": {"state": "paused"}}})


def test_a_pending_node_removed_from_the_workflow_is_skipped_and_the_run_ends() -> None:
    """The configuration dropped node d while the run went on: nothing would ever decide it,
    and the run would wait for it for ever."""
    done = NodeRun(NodeState.SUCCESS, "x#1")
    run = WorkflowRun("diamond", None, {"a": done, "b": done, "c": done, "d": NodeRun()})
    smaller = Workflow("diamond", DIAMOND.nodes[:3])
    d = advance(smaller, run, 10.0)
    assert (d.skip, d.ended, d.result) == (("d",), True, "success")
    assert apply(run, d, {}, 10.0).node("d").state is NodeState.SKIPPED
