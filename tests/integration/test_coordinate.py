"""The workflow coordinator (runner.celery.coordinate) on a real store (files and Redis) and a
real Celery app (the embedded broker): the children it records, step by step, as their runs
end; what survives a crash between its two writes; cancel, approvals and a partial retry.
Workers are not needed here: a child's end is its record's (test_workflow_runs.py runs them)."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from runner import workflow as wf
from runner.celery import coordinate
from runner.celery.app import create_app
from runner.celery.queueing import cancel, pending, retry
from runner.celery.reaper import DEAD, Reaper
from runner.celery.tasks import bury
from runner.config.model import ConfigSet, Node, Workflow
from runner.ops.workflows import NotWaiting, approve, waiting
from runner.runs import RunRecord
from runner.settings import Settings
from runner.store import Store, keys
from runner.store.entries import WorkerHeartbeat, write_worker
from runner.system import System
from tests.helpers.procs import poll
from tests.helpers.repos import small_repo

JOBS = "jobs:\n" + "".join(f"  {j}: {{queue: q, targets: [here], steps: [{{command: 'true'}}]}}\n"
                           for j in ("a", "b", "c", "d", "fix"))
DIAMOND = Workflow("diamond", (
    Node("a", job="a"), Node("b", job="b", after=("a",)), Node("c", job="c", after=("a",)),
    Node("d", job="d", after=("b", "c")), Node("fix", job="fix", after=("d",),
                                               when="on_failure")))
GATE = Workflow("gate", (Node("a", job="a"),
                         Node("ok", approval="Go on?", after=("a",), timeout=3600),
                         Node("b", job="b", after=("ok",))))


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
          store: Store) -> tuple[Store, Celery, ConfigSet]:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("RUNNER_CACHE_DIR", str(tmp_path / "cache"))
    repo = small_repo(tmp_path / "repo", JOBS)
    system = System(Settings(), repo, repo / ".runner")
    config = replace(system.config(), workflows={"diamond": DIAMOND, "gate": GATE})
    return store, create_app(system, config), config


def _start(store: Store, config: ConfigSet, name: str, **extra: Any) -> str:
    record = RunRecord.from_json({**pending(config, name, "cli", extra=extra or None),
                                  "state": "STARTED", "worker": "w-1@here"})
    store.save_run(record)
    coordinate.index(store, record.run_id)
    return record.run_id


def _nodes(store: Store, run_id: str) -> dict[str, wf.NodeRun]:
    record = store.run(run_id)
    assert record is not None and record.workflow is not None
    return dict(wf.WorkflowRun.from_json(record.workflow).nodes)


def _end(store: Store, run_id: str, node: str, state: str = "SUCCESS") -> str:
    child = _nodes(store, run_id)[node].run_id
    assert child
    store.update_run(child, {"state": state, "finished": time.time()})
    return child


def test_a_diamond_starts_each_node_once_its_after_ended_and_ends_failed(
        setup: tuple[Store, Celery, ConfigSet]) -> None:
    store, app, config = setup
    run_id = _start(store, config, "diamond")
    coordinate.advance(store, app, config, run_id)
    nodes = _nodes(store, run_id)
    assert [n for n, s in nodes.items() if s.state == "running"] == ["a"]
    child = store.run(nodes["a"].run_id or "")
    assert child is not None and (child.state, child.job, child.parent, child.node) == (
        "PENDING", "a", run_id, "a")
    coordinate.advance(store, app, config, run_id)  # nothing ended: nothing new
    assert _nodes(store, run_id) == nodes
    _end(store, run_id, "a")
    coordinate.advance(store, app, config, run_id)
    assert {n: s.state for n, s in _nodes(store, run_id).items()} == {
        "a": "success", "b": "running", "c": "running", "d": "pending", "fix": "pending"}
    _end(store, run_id, "b")
    _end(store, run_id, "c")
    coordinate.advance(store, app, config, run_id)
    _end(store, run_id, "d", "FAILURE")
    coordinate.advance(store, app, config, run_id)
    assert _nodes(store, run_id)["fix"].state == "running"  # on_failure
    _end(store, run_id, "fix")
    record = coordinate.advance(store, app, config, run_id)
    assert record is not None and (record.state, record.error) == ("FAILURE", "failed: d")
    assert coordinate.active(store) == []


def test_a_running_node_whose_child_was_never_recorded_gets_that_child(
        setup: tuple[Store, Celery, ConfigSet]) -> None:
    """A crash after the workflow record was written, before the child's: the next advance
    creates the child under the id the record chose, and no other."""
    store, app, config = setup
    run_id = _start(store, config, "diamond")
    chosen = "0000000000ff-deadbeef"
    store.update_run(run_id, {"workflow": wf.WorkflowRun("diamond", None, {
        "a": wf.NodeRun(wf.NodeState.RUNNING, chosen, started_at=time.time())}).to_json()})
    coordinate.advance(store, app, config, run_id)
    child = store.run(chosen)
    assert child is not None and (child.state, child.node) == ("PENDING", "a")
    assert _nodes(store, run_id)["a"].run_id == chosen
    assert [r.run_id for r in store.runs("a", 10)] == [chosen]


def test_a_node_follows_the_retry_of_a_buried_child(
        setup: tuple[Store, Celery, ConfigSet]) -> None:
    store, app, config = setup
    run_id = _start(store, config, "diamond")
    coordinate.advance(store, app, config, run_id)
    first = _end(store, run_id, "a", "FAILURE")
    store.update_run(first, {"retried_as": "0000000000ff-00000001"})
    coordinate.advance(store, app, config, run_id)  # bury is queueing it this instant: a
    assert store.run("0000000000ff-00000001") is None  # second save would race its worker
    assert _nodes(store, run_id)["a"].run_id == first
    store.update_run(first, {"finished": time.time() - coordinate.HOLD})  # bury died there
    coordinate.advance(store, app, config, run_id)
    node = _nodes(store, run_id)["a"]
    assert (node.state, node.run_id) == ("running", "0000000000ff-00000001")
    assert store.run("0000000000ff-00000001") is not None  # missing: recreated


def test_cancel_cancels_the_running_children_and_starts_nothing(
        setup: tuple[Store, Celery, ConfigSet]) -> None:
    store, app, config = setup
    run_id = _start(store, config, "diamond")
    coordinate.advance(store, app, config, run_id)
    store.request_cancel(run_id, "tester")
    record = coordinate.advance(store, app, config, run_id)
    nodes = _nodes(store, run_id)
    child = store.run(nodes["a"].run_id or "")
    assert child is not None and child.state == "REVOKED" and "tester" in (child.error or "")
    assert record is not None and (record.state, record.error) == ("REVOKED",
                                                                   "cancelled by tester")
    assert {n: s.state for n, s in nodes.items()} == {
        "a": "cancelled", "b": "cancelled", "c": "cancelled", "d": "cancelled",
        "fix": "cancelled"}


def test_an_approval_waits_is_listed_and_records_who_approved(
        setup: tuple[Store, Celery, ConfigSet]) -> None:
    store, app, config = setup
    run_id = _start(store, config, "gate")
    coordinate.advance(store, app, config, run_id)
    with pytest.raises(NotWaiting):  # not opened yet
        approve(store, lambda: (app, config), run_id, "ok", True, "ann", None)
    _end(store, run_id, "a")
    coordinate.advance(store, app, config, run_id)
    assert [(w.run_id, w.node, w.question) for w in waiting(store, config)] == [
        (run_id, "ok", "Go on?")]
    approve(store, lambda: (app, config), run_id, "ok", True, "ann", "looks fine")
    nodes = _nodes(store, run_id)
    assert (nodes["ok"].decision, nodes["ok"].by, nodes["ok"].comment) == (
        "approved", "ann", "looks fine")
    assert nodes["b"].state == "running" and waiting(store, config) == []
    with pytest.raises(NotWaiting):  # decided: a second decision does not count
        approve(store, lambda: (app, config), run_id, "ok", False, "bob", None)


def test_a_partial_retry_runs_only_what_failed_and_keeps_the_children_that_succeeded(
        setup: tuple[Store, Celery, ConfigSet]) -> None:
    store, app, config = setup
    run_id = _start(store, config, "gate")
    coordinate.advance(store, app, config, run_id)
    kept = _end(store, run_id, "a")
    coordinate.advance(store, app, config, run_id)
    approve(store, lambda: (app, config), run_id, "ok", False, "ann", "not today")
    record = store.run(run_id)
    assert record is not None and record.state == "FAILURE"
    again = store.run(retry(app, store, config, run_id))
    assert again is not None and (again.retry_of, again.state) == (run_id, "PENDING")
    nodes = wf.WorkflowRun.from_json(again.workflow or {}).nodes
    assert (nodes["a"].state, nodes["a"].run_id) == ("success", kept)
    assert (nodes["ok"].state, nodes["ok"].attempt) == ("pending", 2)
    assert nodes["b"].state == "pending"


def test_an_approval_not_decided_in_its_timeout_fails_and_the_run_ends_failed(
        setup: tuple[Store, Celery, ConfigSet]) -> None:
    store, app, config = setup
    quick = Workflow("quick", (Node("a", job="a"),
                               Node("ok", approval="Go on?", after=("a",), timeout=1)))
    config = replace(config, workflows={"quick": quick})
    run_id = _start(store, config, "quick")
    coordinate.advance(store, app, config, run_id)
    _end(store, run_id, "a")
    coordinate.advance(store, app, config, run_id)
    assert _nodes(store, run_id)["ok"].state == "approval"
    record = poll(lambda: (r := coordinate.advance(store, app, config, run_id)) and
                  r.state != "STARTED" and r, 10, "the approval times out")  # beat's looks
    assert (record.state, record.error) == ("FAILURE", "failed: ok")
    assert _nodes(store, run_id)["ok"].decision == "timed out"


def _lost_child(store: Store, run_id: str, node: str = "a") -> str:
    """The record of `run_id` with `node` running a child whose record is missing (a crash
    between the coordinator's two writes): that child's id."""
    chosen = "0000000000ff-0000beef"
    store.update_run(run_id, {"workflow": wf.WorkflowRun("diamond", None, {
        node: wf.NodeRun(wf.NodeState.RUNNING, chosen, started_at=time.time())}).to_json()})
    return chosen


def test_a_cancelled_run_does_not_create_the_missing_child_of_a_running_node(
        setup: tuple[Store, Celery, ConfigSet]) -> None:
    store, app, config = setup
    run_id = _start(store, config, "diamond")
    chosen = _lost_child(store, run_id)
    store.request_cancel(run_id, "tester")
    record = coordinate.advance(store, app, config, run_id)
    assert store.run(chosen) is None  # never started after the cancel
    assert record is not None and record.state == "REVOKED"
    assert _nodes(store, run_id)["a"].state == "cancelled"


def test_a_running_node_removed_from_the_workflow_whose_child_is_missing_ends(
        setup: tuple[Store, Celery, ConfigSet]) -> None:
    """The node was renamed in the configuration since: its child cannot be made any more;
    the run does not wait for it for ever."""
    store, app, config = setup
    run_id = _start(store, config, "diamond")
    _lost_child(store, run_id, "gone")
    coordinate.advance(store, app, config, run_id)
    assert _nodes(store, run_id)["gone"].state == "cancelled"
    assert _nodes(store, run_id)["a"].state == "running"


def test_a_workflow_run_whose_worker_died_before_indexing_it_is_resumed(
        setup: tuple[Store, Celery, ConfigSet]) -> None:
    """Its worker died between begin_run and adding it to the index: the reaper, which ends
    no workflow run, hands it to beat's looks instead of leaving it STARTED for ever."""
    store, app, config = setup
    run_id = _start(store, config, "diamond")
    coordinate.unindex(store, run_id)
    write_worker(store, "w-1@here", WorkerHeartbeat(heartbeat=time.time()))
    now = [0.0]
    reaper = Reaper(app, store, clock=lambda: now[0])
    assert reaper.workers(config, 0.0) == []
    assert reaper.workers(config, DEAD) == []  # a workflow run is not buried ...
    assert coordinate.active(store) == [run_id]  # ... but followed
    now[0] = DEAD
    reaper.tick(config)
    assert _nodes(store, run_id)["a"].state == "running"


def test_a_workflow_run_whose_pool_process_died_is_followed_not_ended(
        setup: tuple[Store, Celery, ConfigSet]) -> None:
    store, app, config = setup
    run_id = _start(store, config, "diamond")
    coordinate.unindex(store, run_id)
    assert bury(app, store, config, run_id, "worker process 7 died") is None
    record = store.run(run_id)
    assert record is not None and record.state == "STARTED"
    assert coordinate.active(store) == [run_id]


def test_an_advance_whose_lock_ran_out_and_was_taken_writes_nothing(
        setup: tuple[Store, Celery, ConfigSet], monkeypatch: pytest.MonkeyPatch) -> None:
    """Its process stalled past HOLD while deciding, and another advancer holds the lock now:
    a write of its older decision would start the node a second time."""
    store, app, config = setup
    run_id = _start(store, config, "diamond")
    fold = coordinate._fold

    def stalled(*args: Any) -> Any:
        coordinate.release(store, keys.workflow(run_id), coordinate.owner())  # ran out
        poll(lambda: store.lock(keys.workflow(run_id), "another", coordinate.HOLD), 5,
             "another advancer takes the lock")
        return fold(*args)

    monkeypatch.setattr(coordinate, "_fold", stalled)
    assert coordinate.advance(store, app, config, run_id) is None
    assert _nodes(store, run_id)["a"].state == "pending"
    assert store.runs("a", 10) == []


def test_a_child_record_the_store_lost_in_a_failover_is_not_run_again(
        setup: tuple[Store, Celery, ConfigSet], monkeypatch: pytest.MonkeyPatch) -> None:
    """The store's server changed since the node started, and its child's record is gone
    (asynchronous replication lost it): it may be running on a worker, so it is not queued
    again; the node fails with the reason, as a lost hand-off of beat's does."""
    store, app, config = setup
    run_id = _start(store, config, "diamond")
    coordinate.advance(store, app, config, run_id)
    child = _nodes(store, run_id)["a"].run_id or ""
    store.withdraw(child)  # its record and its message lost with the former master
    monkeypatch.setattr(store, "server", lambda: "a new master")
    coordinate.advance(store, app, config, run_id)
    lost = store.run(child)
    assert lost is not None and lost.state == "FAILURE" and lost.parent == run_id
    assert "the store lost this run's record" in (lost.error or "")
    assert _nodes(store, run_id)["a"].state == "failed"


def test_a_cancel_that_races_the_worker_beginning_the_run_still_ends_its_children(
        setup: tuple[Store, Celery, ConfigSet], monkeypatch: pytest.MonkeyPatch) -> None:
    """The cancel read the workflow run PENDING; a worker began it (and started node a)
    before the cancel's flag: the record is not marked REVOKED over a running node, whose
    child would then run on, unfollowed; the next advance cancels it."""
    store, app, config = setup
    record = RunRecord.from_json(pending(config, "diamond", "cli"))
    store.save_run(record)
    run_id, flag = record.run_id, store.request_cancel

    def meanwhile(rid: str, by: str) -> None:
        if rid == run_id:  # not its child's cancel
            store.begin_run(rid, "diamond", "w-1@here", time.time())
            coordinate.index(store, rid)
            coordinate.advance(store, app, config, rid)
        flag(rid, by)

    monkeypatch.setattr(store, "request_cancel", meanwhile)
    cancel(app, store, run_id, "tester")
    assert (store.run(run_id) or record).state == "STARTED"
    assert _nodes(store, run_id)["a"].state == "running"
    ended = coordinate.advance(store, app, config, run_id)
    assert ended is not None and ended.state == "REVOKED"
    assert (store.run(_nodes(store, run_id)["a"].run_id or "") or record).state == "REVOKED"


def test_an_approval_past_its_timeout_cannot_be_approved_any_more(
        setup: tuple[Store, Celery, ConfigSet]) -> None:
    """Its timeout passed before beat's next look expired it: an approve now does not count
    (the approval was rejected when its time ran out); it is expired at once."""
    store, app, config = setup
    run_id = _start(store, config, "gate")
    store.update_run(run_id, {"workflow": wf.WorkflowRun("gate", None, {
        "a": wf.NodeRun(wf.NodeState.SUCCESS, "0000000000ff-00000001"),
        "ok": wf.NodeRun(wf.NodeState.APPROVAL, started_at=time.time() - 3601)}).to_json()})
    with pytest.raises(NotWaiting, match="timed out"):
        approve(store, lambda: (app, config), run_id, "ok", True, "ann", None)
    ok = _nodes(store, run_id)["ok"]
    assert (ok.state, ok.decision, ok.by) == ("failed", "timed out", None)


def test_an_advance_that_loses_its_lock_between_two_children_leaves_the_rest(
        setup: tuple[Store, Celery, ConfigSet], monkeypatch: pytest.MonkeyPatch) -> None:
    """Its lease ran out while it queued b: the new holder finds c's record missing and
    creates it; this one must not save c too (two whole saves race c's worker)."""
    store, app, config = setup
    run_id = _start(store, config, "diamond")
    coordinate.advance(store, app, config, run_id)
    _end(store, run_id, "a")
    queue = coordinate.enqueue

    def stalled(*args: Any, **kwargs: Any) -> str:
        coordinate.release(store, keys.workflow(run_id), coordinate.owner())
        poll(lambda: store.lock(keys.workflow(run_id), "another", coordinate.HOLD), 5,
             "another advancer takes the lock")
        monkeypatch.setattr(coordinate, "enqueue", queue)
        return queue(*args, **kwargs)

    monkeypatch.setattr(coordinate, "enqueue", stalled)
    coordinate.advance(store, app, config, run_id)
    nodes = _nodes(store, run_id)
    assert store.run(nodes["b"].run_id or "") is not None
    assert store.run(nodes["c"].run_id or "") is None  # left to the lock's holder


def _retried(config: ConfigSet) -> ConfigSet:
    """`config` with job a retried once when its worker dies."""
    a = config.jobs["a"]
    return replace(config, jobs={**config.jobs,
                                 "a": replace(a, retries=replace(a.retries, attempts=1))})


def _running_a(store: Store, app: Celery, config: ConfigSet) -> tuple[str, str]:
    """A diamond run whose node a's child is STARTED on a worker: (run id, child id)."""
    run_id = _start(store, config, "diamond")
    coordinate.advance(store, app, config, run_id)
    child = _nodes(store, run_id)["a"].run_id or ""
    store.begin_run(child, "a", "w-2@here", time.time())
    return run_id, child


def test_a_cancelled_child_whose_worker_died_is_not_retried(
        setup: tuple[Store, Celery, ConfigSet]) -> None:
    store, app, config = setup
    config = _retried(config)
    run_id, child = _running_a(store, app, config)
    store.request_cancel(run_id, "tester")
    coordinate.advance(store, app, config, run_id)  # asks the child to stop; it is STARTED
    assert bury(app, store, config, child, "worker w-2@here died") is None  # no retry
    record = coordinate.advance(store, app, config, run_id)
    assert record is not None and record.state == "REVOKED"
    assert [r.run_id for r in store.runs("a", 10)] == [child]


def test_a_cancel_reaches_the_retry_of_a_child_buried_just_before(
        setup: tuple[Store, Celery, ConfigSet]) -> None:
    store, app, config = setup
    config = _retried(config)
    run_id, child = _running_a(store, app, config)
    again = bury(app, store, config, child, "worker w-2@here died")
    assert again is not None
    store.request_cancel(run_id, "tester")
    record = coordinate.advance(store, app, config, run_id)
    assert (store.run(again) or RunRecord(again)).state == "REVOKED"  # never runs
    assert record is not None and record.state == "REVOKED"


def test_beat_follows_the_other_runs_past_one_whose_record_cannot_be_read(
        setup: tuple[Store, Celery, ConfigSet]) -> None:
    """One damaged record must not stop beat's look (nor beat: the exception would end its
    loop) and so every other workflow run."""
    store, app, config = setup
    broken = _start(store, config, "diamond")
    store.update_run(broken, {"workflow": {"workflow": "diamond", "nodes": ["a"]}})
    fine = _start(store, config, "diamond")
    coordinate.follow(app, store, config)
    assert _nodes(store, fine)["a"].state == "running"
