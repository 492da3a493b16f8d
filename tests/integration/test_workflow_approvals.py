"""Approvals of workflow runs through `runner api` (issue 20), on the embedded broker and on a
real Redis, with a real worker: GET /api/approvals lists what `runner status` lists; an
operator's reject and approve move the run on (the rejected run takes its on_failure branch,
the approved one its next node), recorded in the node and in the run's `actions`; a viewer is
refused (403), an unknown run or node is 404, a node not waiting is 409. And the dashboard in
headless Chromium: an operator clicks Approve on the waiting node of a real workflow run and
the graph turns it green while the next node runs, with a screenshot."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.api import ARGS, CHROMIUM, OPS, VIEW, Api, start_api
from tests.helpers.cluster import Cluster
from tests.helpers.procs import poll


def _gated(cluster: Cluster, log: Path) -> None:
    """Jobs appending their name to `log`, and workflow `gated`: first, then an approval
    (1 h), then `then` when approved, `undo` when rejected."""
    def job(name: str) -> str:
        return (f"  w-{name}: {{queue: other, targets: [here], steps: "
                f"[{{command: 'echo {name} >> {log}'}}]}}\n")
    (cluster.repo / "jobs.d" / "w.yaml").write_text(
        "jobs:\n" + job("first") + job("then") + job("undo"))
    (cluster.repo / "workflows.d").mkdir()
    (cluster.repo / "workflows.d" / "gated.yaml").write_text("""\
workflows:
  gated:
    nodes:
      first: {job: w-first}
      gate: {approval: "Ship it?", after: [first], timeout: 1h}
      then: {job: w-then, after: [gate]}
      undo: {job: w-undo, after: [gate], when: on_failure}
""")


def _serve(cluster: Cluster, log: Path) -> Iterator[Api]:
    _gated(cluster, log)
    cluster.worker("side")
    server = start_api(cluster)
    yield server
    server.stop()


@pytest.fixture
def api(cluster: Cluster, tmp_path: Path) -> Iterator[Api]:
    yield from _serve(cluster, tmp_path / "ran.log")


@pytest.fixture
def redis_api(redis_cluster: Cluster, tmp_path: Path) -> Iterator[Api]:
    yield from _serve(redis_cluster, tmp_path / "ran.log")


def _waiting(client: httpx.Client, run_id: str) -> dict[str, Any]:
    """The approval of workflow run `run_id` once GET /api/approvals lists it."""
    def check() -> dict[str, Any] | None:
        found = [a for a in client.get("/api/approvals").json()["approvals"]
                 if a["run_id"] == run_id]
        return found[0] if found else None
    return dict(poll(check, 60, f"the approval of {run_id} waits"))


def _start(client: httpx.Client) -> str:
    r = client.post("/api/jobs/gated/run")
    assert r.status_code == 201, r.text
    return str(r.json()["run_id"])


def _final(client: httpx.Client, run_id: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"/api/runs/{run_id}").json()
        return body if body.get("state") in ("SUCCESS", "FAILURE", "REVOKED") else None
    return dict(poll(check, 60, f"run {run_id} ends"))


def test_an_operator_rejects_and_approves_through_the_api(
        api: Api, cluster: Cluster, tmp_path: Path) -> None:
    log = tmp_path / "ran.log"
    with api.client(OPS) as ops, api.client(VIEW) as viewer:
        rejected = _start(ops)
        waiting = _waiting(viewer, rejected)
        assert (waiting["workflow"], waiting["node"], waiting["question"]) == (
            "gated", "gate", "Ship it?")
        assert waiting["timeout_at"] == pytest.approx(waiting["since"] + 3600)
        status = cluster.runner("status", "--format", "json")  # the CLI and the API agree
        assert json.loads(status.stdout)["approvals"] == [waiting]
        refused = viewer.post(f"/api/runs/{rejected}/nodes/gate/approve")
        assert refused.status_code == 403 and "needs an operator" in refused.json()["detail"]
        unknown = ops.post("/api/runs/019ab8f0e2c8-0a1b2c3d/nodes/gate/approve")
        assert unknown.status_code == 404 and "no workflow run" in unknown.json()["detail"]
        nowhere = ops.post(f"/api/runs/{rejected}/nodes/nope/reject")
        assert nowhere.status_code == 404 and "has no node 'nope'" in nowhere.json()["detail"]
        early = ops.post(f"/api/runs/{rejected}/nodes/first/approve")  # a job node
        assert early.status_code == 409, early.text
        done = ops.post(f"/api/runs/{rejected}/nodes/gate/reject",
                        json={"comment": "not on a friday"})
        assert done.status_code == 200, done.text
        assert done.json()["decision"] == "rejected"
        record = _final(viewer, rejected)
        again = ops.post(f"/api/runs/{rejected}/nodes/gate/approve")
        assert again.status_code == 409 and "waits for nothing" in again.json()["detail"]
        nodes = record["workflow"]["nodes"]
        assert record["state"] == "FAILURE"
        assert {n: v["state"] for n, v in nodes.items()} == {
            "first": "success", "gate": "failed", "then": "skipped", "undo": "success"}
        assert (nodes["gate"]["decision"], nodes["gate"]["by"], nodes["gate"]["comment"]) == (
            "rejected", "otto", "not on a friday")
        assert [(a["action"], a["by"], a["role"], a["via"], a.get("node"), a.get("comment"))
                for a in record["actions"][1:]] == [
            ("reject", "otto", "operator", "api", "gate", "not on a friday")]

        approved = _start(ops)
        _waiting(viewer, approved)
        done = ops.post(f"/api/runs/{approved}/nodes/gate/approve")  # no body: no comment
        assert done.status_code == 200, done.text
        record = _final(viewer, approved)
        assert record["state"] == "SUCCESS"
        assert record["workflow"]["nodes"]["then"]["state"] == "success"
        assert record["workflow"]["nodes"]["gate"]["decision"] == "approved"
        assert record["actions"][-1]["action"] == "approve"
        assert viewer.get("/api/approvals").json() == {"approvals": []}
    assert sorted(log.read_text().split()) == ["first", "first", "then", "undo"]


def _sign_in(browser: Any, api: Api, token: str, errors: list[str]) -> Any:
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(api.url + "/")
    page.fill("#token", token)
    page.click("#login button")
    expect(page.locator("#conn")).to_have_text("live", timeout=30_000)
    return page


def test_an_operator_approves_in_the_dashboard_and_the_graph_goes_on(
        redis_api: Api, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    api, errors = redis_api, []
    with api.client(OPS) as ops, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = _sign_in(browser, api, OPS, errors)
            viewer = _sign_in(browser, api, VIEW, errors)
            flow = _start(ops)  # after sign-in: the list follows the run's events
            row = f'#approvals tr[data-run-id="{flow}"]'
            expect(page.locator(f"{row} button.approve")).to_be_visible(timeout=60_000)
            expect(viewer.locator(row)).to_contain_text("Ship it?", timeout=30_000)
            expect(viewer.locator(f"{row} button")).to_have_count(0)  # a viewer cannot act
            viewer.click(f"{row} td >> nth=0")
            expect(viewer.locator(".approval-bar[data-node=gate]")).to_be_visible()
            expect(viewer.locator(".approval-bar button")).to_have_count(0)
            page.click(f"{row} td >> nth=0")  # the row opens the run and its graph
            drawn = page.locator("#detail-body svg.dag")
            expect(drawn.locator('g.node[data-node="gate"]')).to_have_attribute(
                "data-state", "approval", timeout=10_000)
            page.on("dialog", lambda d: d.accept("lgtm"))  # the comment prompt
            page.click(".approval-bar[data-node=gate] button.approve")
            expect(drawn.locator('g.node[data-node="gate"]')).to_have_attribute(
                "data-state", "success", timeout=30_000)
            expect(drawn.locator('g.node[data-node="then"]')).to_have_attribute(
                "data-state", "success", timeout=60_000)
            expect(page.locator("#approvals-section")).to_be_hidden()
            page.screenshot(path=str(tmp_path / "approved.png"), full_page=True)
        finally:
            browser.close()
        record = ops.get(f"/api/runs/{flow}").json()
    gate = record["workflow"]["nodes"]["gate"]
    assert (gate["decision"], gate["by"], gate["comment"]) == ("approved", "otto", "lgtm")
    assert record["actions"][-1]["action"] == "approve"
    shot = (tmp_path / "approved.png").read_bytes()
    assert shot.startswith(b"\x89PNG\r\n\x1a\n") and len(shot) > 10_000
    assert errors == [], errors  # no CSP refusal, no script error
