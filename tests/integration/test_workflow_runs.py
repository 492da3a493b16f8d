"""Workflow runs with real `runner worker` and `runner beat` processes on the embedded broker and
on a real Redis: a run cancelled mid-graph; the nodes run in their order with on_failure and
always branches, an operator approves at `runner approve`, `runner status` lists the approval
waiting, `runner retry` reruns only the failed node; an approval nobody answers times out; a
worker and beat killed (-9) mid-workflow: it completes, and no node runs twice (each job
appends one line per execution to a log). The demo's workflow under `runner up`:
test_workflow_demo.py."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from tests.helpers.cluster import Cluster
from tests.helpers.procs import poll


def _flow(cluster: Cluster, log: Path, go: Path) -> None:
    """Jobs that append their name to `log` as they start (w-a then waits for `go`, w-c
    fails) and the workflow
    `flow`: a, then b and a failing c; d after both (skipped: c failed); fix on c's failure;
    an approval after b; done always, last."""
    def job(name: str, then: str = "true", extra: str = "") -> str:
        return (f"  w-{name}: {{queue: other, targets: [here]{extra}, steps: "
                f"[{{command: 'echo {name} >> {log}; {then}'}}]}}\n")
    wait = f"while [ ! -e {go} ]; do sleep 0.05; done"
    (cluster.repo / "jobs.d" / "w.yaml").write_text(
        "jobs:\n" + job("a", wait, ", retries: {attempts: 1}") + job("b") + job("d")
        + job("fix") + job("done")
        + job("c", "exit 3"))
    (cluster.repo / "workflows.d").mkdir()
    (cluster.repo / "workflows.d" / "flow.yaml").write_text("""\
workflows:
  flow:
    nodes:
      a: {job: w-a}
      b: {job: w-b, after: [a]}
      c: {job: w-c, after: [a]}
      d: {job: w-d, after: [b, c]}
      fix: {job: w-fix, after: [c], when: on_failure}
      gate: {approval: "Ship it?", after: [b]}
      done: {job: w-done, after: [d, fix, gate], when: always}
""")


def _nodes(cluster: Cluster, run_id: str) -> dict[str, dict[str, object]]:
    record = cluster.store.run(run_id)
    return dict((record.workflow or {}).get("nodes") or {}) if record else {}


def _approve_and_finish(cluster: Cluster, run_id: str, log: Path, a: int = 1,
                        checks: bool = True) -> None:
    """Approves the gate as an operator would, then checks the end: each node ran once (`a`
    times for node a: its child run and the retries of it the reaper queued). `checks`:
    also what status lists and approve's exit codes."""
    poll(lambda: _nodes(cluster, run_id).get("gate", {}).get("state") == "approval", 60,
         "the approval waits")
    if checks:
        status = cluster.runner("status", "--format", "json")
        assert [(a["run_id"], a["node"], a["question"]) for a in
                json.loads(status.stdout)["approvals"]] == [(run_id, "gate", "Ship it?")]
        assert cluster.runner("approve", run_id, "nope").returncode == 2  # no such node
    done = cluster.runner("approve", run_id, "gate", "--comment", "green")
    assert done.returncode == 0, done.stderr
    if checks:
        assert cluster.runner("approve", run_id, "gate").returncode == 1  # decided already
    record = cluster.final(run_id, 60)
    nodes = _nodes(cluster, run_id)
    assert record.state == "FAILURE" and record.error == "failed: c"
    assert {n: v["state"] for n, v in nodes.items()} == {
        "a": "success", "b": "success", "c": "failed", "d": "skipped", "fix": "success",
        "gate": "success", "done": "success"}
    assert (nodes["gate"]["decision"], nodes["gate"]["comment"]) == ("approved", "green")
    assert [(a["action"], a["node"], a["comment"], a["via"]) for a in record.actions or ()] == [
        ("approve", "gate", "green", "cli")]
    assert sorted(log.read_text().split()) == ["a"] * a + ["b", "c", "done", "fix"]
    for job in ("b", "c", "d", "fix", "done"):  # one child run each (d: none, skipped)
        assert len(cluster.store.runs(f"w-{job}", 10)) == (job != "d"), job
    child = cluster.store.run(str(nodes["done"]["run_id"]))
    assert child is not None and (child.parent, child.node, child.job) == (run_id, "done",
                                                                         "w-done")


def test_a_workflow_cancelled_mid_graph_then_branches_an_approval_and_a_partial_retry(
        cluster: Cluster, tmp_path: Path) -> None:
    log, go = tmp_path / "ran.log", tmp_path / "go"
    _flow(cluster, log, go)
    cluster.worker("side")
    cancelled = cluster.enqueue("flow")  # first a run cancelled mid-graph, while a runs
    poll(lambda: log.exists(), 60, "node a runs")
    done = cluster.runner("cancel", cancelled)
    assert done.returncode == 0, done.stderr
    record = cluster.final(cancelled, 60)
    assert record.state == "REVOKED" and "runner cancel" in str(record.error)
    assert set(v["state"] for v in _nodes(cluster, cancelled).values()) == {"cancelled"}
    child = cluster.final(str(_nodes(cluster, cancelled)["a"]["run_id"]), 30)
    assert child.state == "REVOKED"
    assert log.read_text().split() == ["a"]  # no other node started
    log.unlink()
    go.touch()
    run_id = cluster.enqueue("flow")
    _approve_and_finish(cluster, run_id, log)
    done = cluster.runner("retry", run_id)  # partial: only c (failed) and d (skipped by it)
    assert done.returncode == 0, done.stderr
    again = cluster.final(done.stdout.strip(), 60)
    assert (again.state, again.retry_of) == ("FAILURE", run_id)
    before, after = _nodes(cluster, run_id), _nodes(cluster, again.run_id)
    for node in ("a", "b", "fix", "gate", "done"):  # kept, with their child runs
        assert after[node] == before[node], node
    assert after["c"]["run_id"] != before["c"]["run_id"] and after["d"]["state"] == "skipped"
    assert sorted(log.read_text().split()) == ["a", "b", "c", "c", "done", "fix"]


def test_a_workflow_outlives_its_worker_and_beat_killed(
        cluster: Cluster, tmp_path: Path) -> None:
    log, go = tmp_path / "ran.log", tmp_path / "go"
    _flow(cluster, log, go)
    worker = cluster.worker("side")
    beat = cluster.start("beat")
    poll(lambda: cluster.store.holder("beat"), 30, "beat is active")
    run_id = cluster.enqueue("flow")
    poll(lambda: _nodes(cluster, run_id).get("a", {}).get("state") == "running"
         and cluster.state(str(_nodes(cluster, run_id)["a"]["run_id"])) == "STARTED"
         and log.exists() and log.read_text().split() == ["a"], 60,
         "node a's command runs")
    os.killpg(worker.pid, signal.SIGKILL)  # node a's command dies with it
    os.killpg(beat.pid, signal.SIGKILL)
    go.touch()
    cluster.worker("side")
    cluster.start("beat")  # buries a once the dead worker's heartbeat is old; a follows the retry
    poll(lambda: cluster.state(run_id) != "STARTED" or
         _nodes(cluster, run_id).get("gate", {}).get("state") == "approval", 90,
         "the workflow resumes up to its approval")
    children = cluster.store.runs("w-a", 10)  # the buried one, and its retry the node followed
    assert [(r.state, r.retry_of) for r in children] == [
        ("SUCCESS", children[1].run_id), ("FAILURE", None)]
    assert _nodes(cluster, run_id)["a"]["run_id"] == children[0].run_id
    _approve_and_finish(cluster, run_id, log, a=2, checks=False)


def test_an_approval_nobody_answers_times_out_and_its_failure_branch_runs(
        cluster: Cluster, tmp_path: Path) -> None:
    """Beat expires the approval once its `timeout` passed (a rejection: "timed out"); the
    on_failure node runs, the on_success one is skipped."""
    log = tmp_path / "ran.log"
    (cluster.repo / "jobs.d" / "t.yaml").write_text("jobs:\n" + "".join(
        f"  t-{n}: {{queue: other, targets: [here], steps: [{{command: 'echo {n} >> {log}'}}]}}\n"
        for n in ("ship", "undo")))
    (cluster.repo / "workflows.d").mkdir()
    (cluster.repo / "workflows.d" / "t.yaml").write_text("""\
workflows:
  timed:
    nodes:
      gate: {approval: "Ship it?", timeout: 1s}
      ship: {job: t-ship, after: [gate]}
      undo: {job: t-undo, after: [gate], when: on_failure}
""")
    cluster.worker("side")
    cluster.start("beat")
    run_id = cluster.enqueue("timed")
    record = cluster.final(run_id, 60)
    nodes = _nodes(cluster, run_id)
    assert record.state == "FAILURE" and record.error == "failed: gate"
    assert {n: v["state"] for n, v in nodes.items()} == {
        "gate": "failed", "ship": "skipped", "undo": "success"}
    assert nodes["gate"]["decision"] == "timed out"
    assert float(str(nodes["gate"]["ended_at"])) - float(str(nodes["gate"]["started_at"])) >= 1
    assert log.read_text().split() == ["undo"]
