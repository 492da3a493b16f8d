"""runner/api/workflows.py: a workflow's graph as the API and the dashboard show it, and the
workflow runs of /metrics, from a ConfigSet built in code."""

from __future__ import annotations

from runner.api.workflows import graph, metric_lines, run_states, workflows
from runner.config.model import ConfigSet, Node, Schedule, Workflow

DIAMOND = Workflow("release", (
    Node("build", job="build"),
    Node("report", job="notify", after=("test", "lint", "rollback"), when="always"),
    Node("test", job="smoke-test", after=("build",)),
    Node("lint", job="lint", after=("build",)),
    Node("rollback", job="rollback", after=("test",), when="on_failure"),
    Node("approve", approval="Ship it?", timeout=3600, after=("test", "lint")),
), "diamond with a rollback")


def config() -> ConfigSet:
    schedules = {"nightly": Schedule("nightly", "release", every=86400, workflow=True),
                 "a-job": Schedule("a-job", "release", every=60)}  # a job of that name
    return ConfigSet("c" * 40, {}, {}, {}, {}, schedules, {}, workflows={"release": DIAMOND})


def test_nodes_come_in_topological_order_with_their_depth_and_edges_with_their_when() -> None:
    g = graph(config(), DIAMOND)
    assert [(n["name"], n["depth"]) for n in g["nodes"]] == [
        ("build", 0), ("test", 1), ("lint", 1), ("rollback", 2), ("report", 3),
        ("approve", 2)]
    approve = g["nodes"][-1]
    assert (approve["kind"], approve["approval"], approve["timeout"], approve["job"]) == (
        "approval", "Ship it?", 3600, None)
    assert g["nodes"][0]["kind"] == "job" and g["nodes"][0]["when"] == "on_success"
    assert {(e["from"], e["to"], e["when"]) for e in g["edges"]} == {
        ("build", "test", "on_success"), ("build", "lint", "on_success"),
        ("test", "report", "always"), ("lint", "report", "always"),
        ("rollback", "report", "always"), ("test", "rollback", "on_failure"),
        ("test", "approve", "on_success"), ("lint", "approve", "on_success")}
    assert workflows(config()) == {"release": {"description": "diamond with a rollback",
                                               "nodes": 6, "schedules": ["nightly"]}}
    assert graph(config(), DIAMOND)["schedules"] == ["nightly"]


def test_workflow_runs_are_counted_by_state_and_jobs_runs_are_not() -> None:
    runs = [{"job": "release", "state": "SUCCESS"}, {"job": "release", "state": "STARTED"},
            {"job": "release", "state": "SUCCESS"}, {"job": "build", "state": "FAILURE"}]
    counts = run_states(runs, ["release"])
    assert (counts["SUCCESS"], counts["STARTED"], counts["FAILURE"]) == (2, 1, 0)
    lines = metric_lines(counts)
    assert 'runner_workflow_runs{state="SUCCESS"} 2' in lines
    assert "# TYPE runner_workflow_runs gauge" in lines
