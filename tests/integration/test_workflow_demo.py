"""Issue 20's "Done when" on the demo: the seeds' flow (health check of the web targets; restart
on failure; always record the outcome) fired by beat under `runner up` every 2 s, its runs
committed to the report branch (one commit per workflow run, its children's naming it), and
drawn in the dashboard of `runner up`'s API (headless Chromium, a screenshot)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from runner.store.files import FileStore
from tests.helpers.api import ARGS, CHROMIUM, OPS, TOKENS, VIEW
from tests.helpers.procs import poll
from tests.helpers.repos import Commit
from tests.servers import free_port, runner_up, wait_port


def _log(repo: Path, grep: str) -> list[str]:
    """The Run-Id trailers of the report branch's commits matching `grep`."""
    out = subprocess.run(["git", "-C", str(repo), "log", "reports", f"--grep={grep}",
                          "--format=%(trailers:key=Run-Id,valueonly)"],
                         capture_output=True, text=True)
    return [line for line in out.stdout.split() if line]


def test_the_demo_workflow_runs_under_up_lands_on_the_report_branch_and_is_drawn(
        demo_repo: Path, commit: Commit, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    commit({"schedules.d/flow.yaml": "schedules:\n  flow-fast: {workflow: health-and-restart, "
                                     "every: 2s}\n"}, "the demo's workflow every 2 s")
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(RUNNER_CACHE_DIR=str(tmp_path / "cache"), RUNNER_API_TOKENS=TOKENS,
               TEST_VIEW_TOKEN=VIEW, TEST_OPS_TOKEN=OPS)
    store, port = FileStore(demo_repo / ".runner" / "state"), free_port()
    with runner_up(demo_repo, tmp_path / "up.log", env=env, api_port=port) as up:
        done = poll(lambda: [r for r in store.runs("health-and-restart", 20)
                             if r.state == "SUCCESS"], 90, "a scheduled workflow run succeeds")
        record = done[-1]
        nodes = (record.workflow or {})["nodes"]
        assert (record.schedule, record.trigger) == ("flow-fast", "schedule flow-fast")
        assert {n: v["state"] for n, v in nodes.items()} == {
            "check": "success", "restart": "skipped", "record": "success"}
        for node in ("check", "record"):
            child = store.run(nodes[node]["run_id"])
            assert child is not None and (child.parent, child.state) == (record.run_id,
                                                                         "SUCCESS")
        # the audit: one commit for the workflow run, one per child naming it
        poll(lambda: record.run_id in _log(demo_repo, "^Workflow: health-and-restart$"), 60,
             "the workflow run's commit on the report branch")
        children = sorted(nodes[n]["run_id"] for n in ("check", "record"))
        poll(lambda: sorted(_log(demo_repo, f"^Workflow-Run: {record.run_id}$")) == children,
             60, "a commit per child naming the workflow run")  # a batch may come later
        # the dashboard of runner up draws it, each node in its state
        wait_port(port, up, 30)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                errors: list[str] = []
                page.on("console", lambda m: errors.append(m.text) if m.type == "error"
                        else None)
                page.goto(f"http://127.0.0.1:{port}/")
                page.fill("#token", VIEW)
                page.click("#login button")
                expect(page.locator("#conn")).to_have_text("live", timeout=30_000)
                page.click(f'#runs tr[data-run-id="{record.run_id}"] td >> nth=0')
                drawn = page.locator("#detail-body svg.dag")
                for name, state in (("check", "success"), ("restart", "skipped"),
                                    ("record", "success")):
                    expect(drawn.locator(f'g.node[data-node="{name}"]')).to_have_attribute(
                        "data-state", state, timeout=15_000)
                expect(drawn.locator("g.edge")).to_have_count(3)
                page.screenshot(path=str(tmp_path / "demo-workflow.png"), full_page=True)
            finally:
                browser.close()
    shot = (tmp_path / "demo-workflow.png").read_bytes()
    assert shot.startswith(b"\x89PNG\r\n\x1a\n") and len(shot) > 10_000
    assert errors == [], errors
