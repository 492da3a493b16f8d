"""The dashboard in headless Chromium (Debian's /usr/bin/chromium, driven by playwright; no
browser is downloaded): against a real API, Redis and worker processes; and as a newcomer
meets it, `runner up` on a copy of the demo repository, embedded, signed in with the token
it generated."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.api import ARGS, CHROMIUM, OPS, Api, start_api, up_on_demo
from tests.helpers.cluster import Cluster
from tests.helpers.procs import poll


def screenshot(page: Any, shot: Path) -> None:
    """The whole page into the test's artefacts (its path printed), not blank."""
    page.screenshot(path=str(shot), full_page=True)
    print(f"dashboard screenshot: {shot}")
    assert shot.stat().st_size > 10_000


@pytest.fixture
def api(redis_cluster: Cluster) -> Iterator[Api]:
    server = start_api(redis_cluster)
    yield server
    server.stop()


def test_watch_a_run_finish_and_cancel_a_running_one(api: Api, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    api.cluster.worker("side")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(api.url + "/")
            page.fill("#token", OPS)
            page.click("#login button")
            expect(page.locator("#conn")).to_have_text("live", timeout=30_000)
            expect(page.locator("#who")).to_have_text("otto (operator)")
            # the configuration is on the page: queues with lengths, jobs to run
            expect(page.locator("#queues tbody tr")).to_have_count(3)
            # enqueue from the page; the run appears and finishes, pushed over the WebSocket
            page.click('button.run[data-job="side-job"]')
            done = page.locator('#runs tr[data-state="SUCCESS"]')
            expect(done).to_have_count(1, timeout=60_000)
            run_id = done.get_attribute("data-run-id")
            done.locator("td").first.click()  # drill down: the run's page, the target's output
            expect(page.locator("#detail-id")).to_have_text(str(run_id))
            expect(page.locator('#page .target[data-target="here"] pre').first) \
                .to_contain_text("side", timeout=10_000)
            page.go_back()
            # a running one: press cancel and see it end REVOKED
            with api.client(OPS) as ops:
                slow = ops.post("/api/jobs/slow/run").json()["run_id"]
            row = page.locator(f'#runs tr[data-run-id="{slow}"]')
            expect(row).to_have_attribute("data-state", "STARTED", timeout=60_000)
            row.locator("button.cancel").click()
            expect(row).to_have_attribute("data-state", "REVOKED", timeout=30_000)
            expect(page.locator("#workers tbody tr")).to_have_count(1, timeout=30_000)
            screenshot(page, tmp_path / "dashboard.png")
        finally:
            browser.close()
    with api.client(OPS) as ops:
        record = ops.get(f"/api/runs/{slow}").json()
    assert record["state"] == "REVOKED" and record["actions"][-1]["action"] == "cancel"


def test_dashboard_and_docs_request_nothing_from_other_hosts(
        embedded_cluster: Cluster, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    server = start_api(embedded_cluster)
    asked: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                page = browser.new_page()
                page.on("request", lambda r: asked.append(r.url))
                page.on("websocket", lambda ws: asked.append(ws.url))
                page.goto(server.url + "/")
                page.fill("#token", OPS)
                page.click("#login button")
                expect(page.locator("#conn")).to_have_text("live", timeout=30_000)
                page.goto(server.url + "/docs")
                expect(page.locator(".swagger-ui .info .title")).to_contain_text(
                    "runner", timeout=30_000)
                expect(page.locator(".opblock-summary-path").first).to_be_visible()
                screenshot(page, tmp_path / "docs.png")
            finally:
                browser.close()
    finally:
        server.stop()
    here = server.url.split("://", 1)[1]
    assert {"/", "/docs", "/openapi.json", "/api/events"} <= {
        "/" + u.split("://", 1)[1].split("/", 1)[1] for u in asked}
    away = [u for u in asked if u.split("://", 1)[1].split("/", 1)[0] != here
            and not u.startswith(("data:", "blob:"))]
    assert away == [], away


@pytest.fixture
def demo_up(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    """`runner up` on a git repository holding the demo, plus a schedule that fires every
    2 s and a job that sleeps (to cancel), embedded (no REDIS_URL, no token settings)."""
    with up_on_demo(tmp_path, {
            "schedules.d/fast.yaml":
                "schedules:\n  fast: {job: health-check, every: 2s, overlap: forbid}\n",
            "jobs.d/sleepy.yaml": "jobs:\n  sleepy: {queue: execution, targets: [localhost], "
                                  "steps: [{command: sleep 59.3}]}\n",
    }) as (url, repo, _env, proc):
        yield url, repo, proc


def test_runner_up_on_the_demo_watch_schedules_fire_and_cancel_from_the_browser(
        demo_up: tuple[str, Path, subprocess.Popen[bytes]], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, repo, proc = demo_up
    token = (repo / ".runner" / "api-token").read_text().strip()
    assert (repo / ".runner" / "api-token").stat().st_mode & 0o077 == 0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(url + "/")
            page.fill("#token", token)
            page.click("#login button")
            expect(page.locator("#conn")).to_have_text("live", timeout=30_000)
            expect(page.locator("#who")).to_have_text("local-operator (operator)")
            # the schedules with their next fire; the fast one's moves on as it fires
            fast = page.locator('#schedules tr[data-schedule="fast"]')
            expect(page.locator('#schedules tr[data-schedule="health-every-minute"] td.next')
                   ).not_to_have_text("-")
            expect(fast.locator("td.next")).not_to_have_attribute("title", "", timeout=30_000)
            first = fast.locator("td.next").get_attribute("title")
            expect(fast.locator("td.next")).not_to_have_attribute("title", str(first),
                                                                  timeout=30_000)
            # its runs appear on the page, pushed, and finish
            fired = page.locator('#runs tr[data-schedule="fast"][data-state="SUCCESS"]')
            expect(fired.first).to_be_visible(timeout=60_000)
            expect(fast.locator("code")).not_to_have_text("-")
            # start the sleeping job from the page, cancel it there, see it end REVOKED
            page.click('button.run[data-job="sleepy"]')
            row = page.locator('#runs tr[data-job="sleepy"]')
            expect(row).to_have_attribute("data-state", "STARTED", timeout=60_000)
            run_id = row.get_attribute("data-run-id")
            row.locator("button.cancel").click()
            expect(row).to_have_attribute("data-state", "REVOKED", timeout=30_000)
            expect(page.locator("#workers tbody tr[data-worker]")).to_have_count(
                2, timeout=30_000)  # both demo workers, seen over remote control
            screenshot(page, tmp_path / "demo-dashboard.png")
        finally:
            browser.close()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c:
        record = c.get(f"/api/runs/{run_id}").json()
        # remote control answered (a refresh under load may miss its 1 s window: poll)
        workers = poll(lambda: (w := c.get("/api/workers").json()["workers"]) and
                       all(x["pid"] for x in w.values()) and w, 30, "workers' stats")
    assert record["state"] == "REVOKED"
    assert record["actions"][-1]["action"] == "cancel"
    assert record["actions"][-1]["by"] == "local-operator"
    assert len(workers) == 2
    os.killpg(proc.pid, signal.SIGTERM)  # what systemd or Ctrl-C does
    assert proc.wait(60) == 0
    log = (tmp_path / "up.log").read_text()
    assert token not in log
    assert "Traceback" not in log, log[-3000:]


REPORT_CSP = ("document.addEventListener('securitypolicyviolation', (e) => console.error("
              "'CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI))")


def test_the_dashboard_works_under_the_csp_and_keeps_its_token_in_its_tab(
        embedded_cluster: Cluster) -> None:
    from playwright.sync_api import expect, sync_playwright

    server = start_api(embedded_cluster)
    errors: list[str] = []
    try:
        embedded_cluster.worker("side")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                context = browser.new_context()
                context.add_init_script(REPORT_CSP)
                page = context.new_page()
                page.on("console", lambda m: m.type == "error" and errors.append(m.text))
                page.goto(server.url + "/")
                # a token an earlier version left in localStorage is dropped, not used
                page.evaluate(f"localStorage.setItem('runner-token', '{OPS}')")
                page.reload()
                expect(page.locator("#login")).to_be_visible()
                assert page.evaluate("localStorage.length") == 0
                page.fill("#token", OPS)
                page.click("#login button")
                expect(page.locator("#conn")).to_have_text("live", timeout=30_000)
                page.click('button.run[data-job="side-job"]')  # a run, for the charts
                expect(page.locator('#runs tr[data-state="SUCCESS"]')).to_have_count(
                    1, timeout=60_000)
                legend = page.locator("#dur-legend i").first  # coloured without style=""
                expect(legend).to_be_visible(timeout=30_000)
                assert legend.evaluate("i => getComputedStyle(i).backgroundColor") not in (
                    "", "rgba(0, 0, 0, 0)")
                page.goto(server.url + "/docs")
                expect(page.locator(".opblock-summary-path").first).to_be_visible(
                    timeout=30_000)
                # the token is this tab's: kept across pages and reloads, never in
                # localStorage, unknown to another tab
                page.goto(server.url + "/")
                expect(page.locator("#conn")).to_have_text("live", timeout=30_000)
                assert page.evaluate("sessionStorage.getItem('runner-token')") == OPS
                assert page.evaluate("localStorage.length") == 0
                other = context.new_page()
                other.goto(server.url + "/")
                expect(other.locator("#login")).to_be_visible()
                expect(other.locator("#main")).to_be_hidden()
                assert other.evaluate("sessionStorage.length + localStorage.length") == 0
                assert errors == []  # nothing of the dashboard or /docs was blocked
                # and the policy is in force: a script the page did not load is blocked
                page.evaluate("() => { const s = document.createElement('script');"
                              " s.textContent = 'window.ran = 1'; document.body.append(s); }")
                assert page.evaluate("window.ran") is None
                poll(lambda: any("CSP violation: script-src" in e for e in errors), 10,
                     "the inline script is reported")
            finally:
                browser.close()
    finally:
        server.stop()
