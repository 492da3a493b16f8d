"""The dashboard's pages in headless Chromium, against a real API, Redis and worker: a run's
own URL opened directly (before signing in), reloaded and reached from an older
notification link; the runs list filtered and paged through its URL, back and forward; a
job's run-now form built from its params, with the API's refusal shown; nothing wider than
the window at 1400 and 800 px. Screenshots go to /work/shots/ for the lead (or
RUNNER_SHOTS)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.api import ARGS, CHROMIUM, OPS, Api, start_api, wait_state
from tests.helpers.cluster import Cluster, make_cluster
from tests.servers import Redis

SHOTS = Path(os.environ.get("RUNNER_SHOTS", "/work/shots"))
DEPLOY = """\
  deploy:
    queue: other
    targets: [here]
    description: a job with params
    params:
      service: {type: string, enum: [nginx, app], default: app, description: which service}
      batch: {type: integer, minimum: 1, maximum: 50, default: 5}
      drain: {type: boolean, default: true}
    steps:
      - {name: hello, command: 'echo "service=$RUNNER_PARAM_SERVICE batch=$RUNNER_PARAM_BATCH"'}
      - {name: warn, command: 'echo warned >&2'}
      - {name: fetch, download: {src: /etc/hostname}}
"""
# GET /api/jobs/deploy as the API contract has it, for an API that does not answer it yet
CONTRACT_JOB = {"name": "deploy", "queue": "other", "description": "a job with params",
                "file": "jobs.d/j.yaml", "line": 9, "yaml": DEPLOY, "revision": "0" * 40,
                "commit_url": None, "targets": ["here"], "schedules": [],
                "params": {"service": {"type": "string", "enum": ["nginx", "app"],
                                       "default": "app", "description": "which service"},
                           "batch": {"type": "integer", "minimum": 1, "maximum": 50,
                                     "default": 5},
                           "drain": {"type": "boolean", "default": True}},
                "stats": {"runs": 1, "succeeded": 1, "failed": 0, "durations": []}}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, redis_server: Redis) -> Iterator[Api]:
    cluster: Cluster = make_cluster(tmp_path_factory.mktemp("pages"), redis_server.url)
    with open(cluster.repo / "jobs.d" / "j.yaml", "a") as f:
        f.write(DEPLOY)
    (cluster.repo / "schedules.d" / "s.yaml").write_text(
        'schedules:\n  nightly: {job: side-job, cron: "30 2 * * *", timezone: Europe/Berlin}\n')
    server = start_api(cluster)
    try:
        cluster.worker("side")
        yield server
    finally:
        server.stop()
        cluster.stop()


def runs(page: Any) -> list[str]:
    return [str(r.get_attribute("data-run-id")) for r in page.locator("#runs tbody tr").all()]


def fits(page: Any, name: str, width: int) -> None:
    """No horizontal scroll of the page at `width`; a full-page screenshot for the lead."""
    page.set_viewport_size({"width": width, "height": 900})
    wide = page.evaluate("document.documentElement.scrollWidth")
    assert wide <= width, f"{name} is {wide} px wide at {width}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)


def test_pages_by_url_filters_paging_history_and_the_params_form(api: Api) -> None:
    from playwright.sync_api import expect, sync_playwright

    with api.client(OPS) as c:
        deploy = c.post("/api/jobs/deploy/run",
                        json={"params": {"service": "nginx", "batch": 3}}).json()["run_id"]
        failed = c.post("/api/jobs/fails/run").json()["run_id"]
        sides = [c.post("/api/jobs/side-job/run").json()["run_id"] for _ in range(6)]
        for run_id in (deploy, failed, *sides):
            wait_state(c, run_id, ("SUCCESS", "FAILURE"))
        contract = c.get("/api/jobs/deploy").status_code == 200
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900}, timezone_id="UTC")
            if not contract:  # the API of this branch lacks GET /api/jobs/NAME: the contract's
                page.route("**/api/jobs/deploy", lambda route: route.fulfill(
                    json=CONTRACT_JOB) if route.request.method == "GET" else route.continue_())
            # a run's URL, opened before signing in: the sign-in keeps it
            page.goto(f"{api.url}/runs/{deploy}")
            page.fill("#token", OPS)
            page.click("#login button")
            expect(page.locator("#detail-id")).to_have_text(deploy, timeout=30_000)
            target = page.locator('#page .target[data-target="here"]')
            expect(target.locator(":scope > h3")).to_have_count(1)  # the target name, once
            assert target.evaluate("t => t.innerText.split('here').length") == 2
            expect(target.locator("tr[data-step]")).to_have_count(3)
            expect(target.locator('[data-listing="downloads"] li')).to_contain_text(
                "/etc/hostname")
            expect(target.locator('tr[data-step="hello"]')).to_have_attribute("data-state",
                                                                               "success")
            out = target.locator('details[data-stream="stdout"] .line')
            expect(out).to_have_text(["service=nginx batch=3"])
            expect(target.locator('details[data-stream="stderr"] .line')).to_have_text(["warned"])
            assert out.evaluate("l => getComputedStyle(l, '::before').content") == "counter(line)"
            expect(page.locator('[data-listing="params"]')).to_contain_text('service = "nginx"')
            expect(page.locator(".facts")).to_contain_text(" UTC")  # times with their zone
            fits(page, "run", 1400)
            fits(page, "run", 800)
            page.set_viewport_size({"width": 1400, "height": 900})
            page.reload()  # the server answers the page's URL too
            expect(page.locator("#detail-id")).to_have_text(deploy, timeout=30_000)
            page.goto(f"{api.url}/#run={sides[0]}")  # a notification's link of before
            expect(page.locator("#detail-id")).to_have_text(sides[0], timeout=30_000)
            assert page.url == f"{api.url}/runs/{sides[0]}"
            expect(page.locator('details[data-stream="stderr"]')).to_have_count(0)  # empty
            # the runs list: filtered to one job and state through the form, into the URL
            page.click("header h1 a")
            expect(page.locator("#runs tbody tr")).to_have_count(8, timeout=30_000)
            fits(page, "overview", 1400)
            fits(page, "overview", 800)
            page.set_viewport_size({"width": 1400, "height": 900})
            page.select_option('#filters select[name="job"]', "fails")
            page.select_option('#filters select[name="state"]', "FAILURE")
            page.click("#filters button")
            expect(page.locator("#runs tbody tr")).to_have_count(1)
            assert runs(page) == [failed]
            assert page.url.endswith("/?job=fails&state=FAILURE")
            page.go_back()
            expect(page.locator("#runs tbody tr")).to_have_count(8)
            page.go_forward()
            expect(page.locator("#runs tbody tr")).to_have_count(1)
            expect(page.locator('#filters select[name="job"]')).to_have_value("fails")
            # paging: five a page, "older" follows the cursor to the sixth
            page.goto(f"{api.url}/?job=side-job&limit=5")
            expect(page.locator("#runs tbody tr")).to_have_count(5, timeout=30_000)
            first = runs(page)
            assert first == sides[::-1][:5]
            page.click("#runs-older")
            expect(page.locator("#runs tbody tr")).to_have_count(1)
            assert runs(page) == [sides[0]] and "cursor=" in page.url
            page.go_back()
            expect(page.locator("#runs tbody tr")).to_have_count(5)
            # a new run while filtered is counted, not slipped into the list
            with api.client(OPS) as c:
                c.post("/api/jobs/side-job/run")
            expect(page.locator("#runs-new")).to_have_text("1 new", timeout=30_000)
            assert runs(page) == first
            # a schedule's page: its next firings in its zone and the viewer's (UTC here)
            page.goto(f"{api.url}/schedules/nightly")
            expect(page.locator('[data-listing="next firings"] li').first).to_have_text(
                re.compile(r"^\d{4}-\d\d-\d\d 02:30:00 UTC\+01:00 \(Europe/Berlin\) · "
                           r"\d{4}-\d\d-\d\d 01:30:00 UTC\+00:00$"), timeout=30_000)
            fits(page, "schedule", 800)
            page.go_back()
            # the job page: its run-now form from the params, the API's refusal shown
            page.click('#runs a[href="/jobs/side-job"] >> nth=0')
            expect(page.locator("#job-name")).to_have_text("side-job")
            page.goto(f"{api.url}/jobs/deploy")
            expect(page.locator("#run-form select#param-service")).to_have_value('"app"',
                                                                                timeout=30_000)
            expect(page.locator("#param-drain")).to_be_checked()
            assert page.locator("#param-batch").get_attribute("max") == "50"
            page.fill("#param-batch", "99")
            page.select_option("#param-service", '"nginx"')
            page.click("#run-form button")
            expect(page.locator("#run-error")).to_contain_text("batch", timeout=30_000)
            assert page.url == f"{api.url}/jobs/deploy"
            fits(page, "job", 1400)
            fits(page, "job", 800)
            page.fill("#param-batch", "2")
            page.click("#run-form button")
            expect(page.locator("#detail-id")).to_be_visible(timeout=30_000)
            expect(page.locator('details[data-stream="stdout"] .line')).to_have_text(
                ["service=nginx batch=2"], timeout=30_000)
            started = page.url.rsplit("/", 1)[1]
        finally:
            browser.close()
    with api.client(OPS) as c:
        asked = c.get(f"/api/runs/{started}").json()
    assert asked["params"] == {"service": "nginx", "batch": 2, "drain": True}
    assert json.dumps(asked["actions"][-1]["action"]) == '"run"'
