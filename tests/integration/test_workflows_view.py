"""The read side of workflows (issue 20) against a real `runner api` on Redis: the definitions
and a graph over HTTP, workflow runs in /metrics, and the dashboard in headless Chromium
drawing a workflow run saved into the store by the test (node states, edges, live redraw, a
click through to a child run), with a screenshot."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.runs import RunRecord, new_run_id
from runner.store import Store
from tests.helpers.api import ARGS, CHROMIUM, OPS, VIEW, Api, start_api
from tests.helpers.cluster import Cluster

WORKFLOW = """\
workflows:
  release:
    description: a diamond, a rollback on failure, an approval
    nodes:
      build:    {job: quick-high}
      test:     {job: fails, after: [build]}
      lint:     {job: quick-low, after: [build]}
      rollback: {job: side-job, after: [test], when: on_failure}
      approve:  {approval: "Ship it?", after: [test, lint], timeout: 1h}
      report:   {job: side-job, after: [approve, rollback], when: always}
"""
EDGES = {("build", "test", "on_success"), ("build", "lint", "on_success"),
         ("test", "rollback", "on_failure"), ("test", "approve", "on_success"),
         ("lint", "approve", "on_success"), ("approve", "report", "always"),
         ("rollback", "report", "always")}


@pytest.fixture
def api(redis_cluster: Cluster) -> Iterator[Api]:
    repo = redis_cluster.repo
    (repo / "workflows.d").mkdir()
    (repo / "workflows.d" / "release.yaml").write_text(WORKFLOW)
    (repo / "schedules.d" / "s.yaml").write_text(
        'schedules:\n  nightly-release: {workflow: release, cron: "0 2 * * *"}\n')
    server = start_api(redis_cluster)
    yield server
    server.stop()


def save(store: Store, job: str, state: str, **extra: Any) -> str:
    now = time.time()
    run_id = new_run_id(now)
    store.save_run(RunRecord.from_json({"run_id": run_id, "job": job, "state": state,
                                        "queue": "other", "created": now, "started": now,
                                        "trigger": "schedule nightly-release", **extra}))
    return run_id


def workflow_run(store: Store) -> tuple[str, dict[str, str], dict[str, Any]]:
    """A running workflow run with a child per started job node, as the runtime saves them:
    build and lint succeeded, test failed, rollback runs, approve waits, report pending."""
    flow = new_run_id()
    states = {"build": "SUCCESS", "test": "FAILURE", "lint": "SUCCESS", "rollback": "STARTED"}
    jobs = {"build": "quick-high", "test": "fails", "lint": "quick-low", "rollback": "side-job"}
    children = {n: save(store, jobs[n], s, parent=flow, node=n) for n, s in states.items()}
    nodes: dict[str, Any] = {
        "build": {"state": "success", "run_id": children["build"]},
        "test": {"state": "failed", "run_id": children["test"]},
        "lint": {"state": "success", "run_id": children["lint"]},
        "rollback": {"state": "running", "run_id": children["rollback"]},
        "approve": {"state": "approval", "started_at": time.time()},
        "report": {"state": "pending"}}
    store.save_run(RunRecord.from_json(
        {"run_id": flow, "job": "release", "state": "STARTED", "created": time.time(),
         "trigger": "schedule nightly-release",
         "workflow": {"workflow": "release", "cancelled": False, "nodes": nodes}}))
    return flow, children, nodes


def test_the_api_lists_workflows_draws_a_graph_and_counts_workflow_runs(api: Api) -> None:
    from pydantic import TypeAdapter

    from runner.api import models as m

    flow, children, _nodes = workflow_run(api.cluster.store)
    with api.client(VIEW) as viewer:
        for path, model in (("/api/workflows", m.Workflows), (f"/api/runs/{flow}", m.Run),
                            ("/api/workflows/release", m.WorkflowGraph),
                            (f"/api/runs/{children['test']}", m.Run)):
            TypeAdapter(model).validate_json(viewer.get(path).content, strict=True)
        assert viewer.get(f"/api/runs/{children['test']}").json()["parent"] == flow
        listed = viewer.get("/api/workflows")
        assert listed.status_code == 200, listed.text
        assert listed.json()["workflows"] == {"release": {
            "description": "a diamond, a rollback on failure, an approval", "nodes": 6,
            "schedules": ["nightly-release"]}}
        graph = viewer.get("/api/workflows/release").json()
        assert [(n["name"], n["depth"]) for n in graph["nodes"]] == [
            ("build", 0), ("test", 1), ("lint", 1), ("rollback", 2), ("approve", 2),
            ("report", 3)]
        approve = graph["nodes"][4]
        assert (approve["kind"], approve["approval"], approve["timeout"]) == (
            "approval", "Ship it?", 3600)
        assert {(e["from"], e["to"], e["when"]) for e in graph["edges"]} == EDGES
        missing = viewer.get("/api/workflows/nope")
        assert missing.status_code == 404
        assert "there is no workflow 'nope'" in missing.json()["detail"]
        assert viewer.get("/api/workflows").status_code == 200
        metrics = viewer.get("/metrics").text.splitlines()
    assert 'runner_workflow_runs{state="STARTED"} 1' in metrics  # the children are not counted
    assert 'runner_workflow_runs{state="SUCCESS"} 0' in metrics


def test_the_dashboard_draws_a_workflow_run_live_and_opens_a_child(
        api: Api, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    store = api.cluster.store
    flow, children, nodes = workflow_run(store)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(api.url + "/")
            page.fill("#token", OPS)
            page.click("#login button")
            expect(page.locator("#conn")).to_have_text("live", timeout=30_000)
            # the definition: every node drawn, none coloured by a run
            page.click('#workflows tr[data-workflow="release"]')
            definition = page.locator("#workflow-body svg.dag g.node")
            expect(definition).to_have_count(6)
            expect(page.locator("#workflow-body svg.dag g.node.definition")).to_have_count(6)
            # the run: each node in its state's class, the edges with their `when`
            page.go_back()  # from the workflow's page to the overview's runs
            page.click(f'#runs tr[data-run-id="{flow}"] td >> nth=0')
            drawn = page.locator("#detail-body svg.dag")
            expect(drawn.locator("g.node")).to_have_count(6, timeout=10_000)
            for name, node in nodes.items():
                expect(drawn.locator(f'g.node[data-node="{name}"]')).to_have_class(
                    f"node kind-{'approval' if name == 'approve' else 'job'} {node['state']}"
                    + (" link" if "run_id" in node else ""))
            edges = drawn.locator("g.edge")
            expect(edges).to_have_count(len(EDGES))
            seen = {(e.get_attribute("data-from"), e.get_attribute("data-to"),
                     e.get_attribute("class")) for e in edges.all()}
            assert seen == {(a, b, f"edge {w}") for a, b, w in EDGES}
            expect(drawn.locator("g.edge.on_failure text")).to_have_text("on failure")
            # the record changes: the graph is redrawn from the WebSocket's run event
            record = store.run(flow)
            assert record is not None and record.workflow
            moved = {**nodes, "rollback": {"state": "success", "run_id": children["rollback"]}}
            store.save_run(record.updated({"workflow": {**record.workflow, "nodes": moved}}))
            expect(drawn.locator('g.node[data-node="rollback"]')).to_have_attribute(
                "data-state", "success", timeout=15_000)
            page.screenshot(path=str(tmp_path / "workflow-run.png"), full_page=True)
            # a click on a job node opens its child run, which links back
            drawn.locator('g.node[data-node="test"]').click()
            expect(page.locator("#detail-id")).to_have_text(children["test"])
            expect(page.locator("#detail-body a.parent")).to_have_text(
                f"workflow run {flow}, node test")
            page.click("#detail-body a.parent")
            expect(page.locator("#detail-id")).to_have_text(flow)
            expect(page.locator("#detail-body svg.dag g.node")).to_have_count(6)
        finally:
            browser.close()
    shot = (tmp_path / "workflow-run.png").read_bytes()
    assert shot.startswith(b"\x89PNG\r\n\x1a\n") and len(shot) > 10_000
    assert errors == [], errors  # no CSP refusal, no script error
