"""Issue 23's "Done when", in headless Chromium on ONE `runner up` of a copy of the demo
(embedded, its generated token): a run's URL opened directly shows its steps and stdout;
the runs list filtered to one job and state, paged past its first page; a job's, a
schedule's (suspended and resumed), a workflow's and a worker's page; a running run's
output growing in place; a refused commit's error at file:line on the overview; no page
wider than the window at 1400 and 800 px; axe-core finds no serious or critical violation
on any page. Screenshots of each page go to a temporary directory, or to RUNNER_SHOTS
(`RUNNER_SHOTS=docs/dashboard` refreshes the README's)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.api import ARGS, CHROMIUM, up_on_demo
from tests.helpers.dashboard import accessible, fits
from tests.helpers.procs import poll
from tests.helpers.repos import git

# prints a line, waits for the test's file GO1, prints the next, ...
GROWS = """\
jobs:
  tick: {{queue: execution, targets: [localhost], steps: [{{name: say, command: echo tick}}]}}
  grows:
    queue: execution
    targets: [localhost]
    steps:
      - name: grow
        command: >-
          echo starting >&2;
          for n in 1 2 3; do echo line $n;
          until [ -e {d}/GO$n ]; do sleep 0.05; done; done
"""


@pytest.fixture
def up(tmp_path: Path) -> Iterator[tuple[str, Path, dict[str, str]]]:
    """`runner up` on the demo plus `tick` (every 2 s, schedule `fast`) and `grows`."""
    with up_on_demo(tmp_path, {
            "jobs.d/done.yaml": GROWS.format(d=tmp_path),
            "schedules.d/fast.yaml":
                "schedules:\n  fast: {job: tick, every: 2s, overlap: forbid}\n",
    }) as (url, repo, env, _proc):
        yield url, repo, env


def rows(page: Any) -> list[tuple[str, str, str]]:
    return [(str(r.get_attribute("data-run-id")), str(r.get_attribute("data-job")),
             str(r.get_attribute("data-state"))) for r in page.locator("#runs tbody tr").all()]


def test_done_when_every_page_by_url_live_output_fits_and_is_accessible(
        up: tuple[str, Path, dict[str, str]], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, repo, _env = up
    shots = Path(os.environ.get("RUNNER_SHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    token = (repo / ".runner" / "api-token").read_text().strip()
    c = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def ticks() -> list[str]:
        page = c.get("/api/runs", params={"job": "tick", "state": "SUCCESS"}).json()["runs"]
        return [r["run_id"] for r in page]

    first = poll(lambda: len(t := ticks()) >= 3 and t, 60, "three tick runs")[-1]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:  # bypass_csp: axe-core is added to the page as a script of its own
            page = browser.new_context(bypass_csp=True, timezone_id="UTC",
                                       viewport={"width": 1400, "height": 900}).new_page()
            # a run's URL, opened directly: sign in, then its steps and stdout
            page.goto(f"{url}/runs/{first}")
            accessible(page, "sign-in")
            page.fill("#token", token)
            page.click("#login button")
            expect(page.locator("#detail-id")).to_have_text(first, timeout=30_000)
            target = page.locator('#page .target[data-target="localhost"]')
            expect(target.locator('tr[data-step="say"]')).to_have_attribute("data-state",
                                                                             "success")
            expect(target.locator('details[data-stream="stdout"] .line')).to_have_text(["tick"])
            accessible(page, "run")
            fits(page, "run", shots)
            # the overview; the runs list filtered to one job and state through its form
            page.click("header h1 a")
            expect(page.locator("#runs tbody tr").first).to_be_visible(timeout=30_000)
            expect(page.locator("#config-facts")).to_contain_text("applied")
            expect(page.locator("#workers tbody tr[data-worker]").first).to_be_visible(
                timeout=30_000)
            expect(page.locator("#workers td.age").first).to_contain_text(" ago")
            expect(page.locator("#chart-queues polyline").first).to_be_attached(timeout=30_000)
            expect(page.locator("#chart-late rect").first).to_be_attached(timeout=30_000)
            accessible(page, "overview")
            fits(page, "overview", shots)
            page.select_option('#filters select[name="job"]', "tick")
            page.select_option('#filters select[name="state"]', "SUCCESS")
            page.click("#filters button")
            expect(page).to_have_url(f"{url}/?job=tick&state=SUCCESS")
            expect(page.locator('#runs tbody tr:not([data-job="tick"][data-state="SUCCESS"])')
                   ).to_have_count(0)  # the list as filtered, not the one before
            expect(page.locator("#runs tbody tr").first).to_be_visible()
            assert {(j, s) for _, j, s in rows(page)} == {("tick", "SUCCESS")}
            # paged: two a page, "older" follows the cursor past the first page
            page.goto(f"{url}/?job=tick&state=SUCCESS&limit=2")
            expect(page.locator("#runs tbody tr")).to_have_count(2, timeout=30_000)
            newest = [r for r, _, _ in rows(page)]
            page.click("#runs-older")
            expect(page.locator("#runs-first")).to_be_visible()
            older = [r for r, _, _ in rows(page)]
            assert older and not set(older) & set(newest) and max(older) < min(newest)
            accessible(page, "runs")
            fits(page, "runs", shots)
            # a job's page, reached by its link
            page.click('#runs a[href="/jobs/tick"] >> nth=0')
            expect(page.locator("#job-name")).to_have_text("tick", timeout=30_000)
            expect(page.locator("#page .recent tbody tr").first).to_be_visible()
            accessible(page, "job")
            fits(page, "job", shots)
            # a schedule's page: next firings, past ones on a time line; suspend and resume
            page.goto(f"{url}/schedules/fast")
            expect(page.locator('[data-listing="next firings"] li').first).to_be_visible(
                timeout=30_000)
            expect(page.locator("#firings-chart circle").first).to_be_attached()
            accessible(page, "schedule")
            fits(page, "schedule", shots)
            page.click("#schedule-toggle")
            expect(page.locator("#schedule-state")).to_have_text("suspended", timeout=30_000)
            assert c.get("/api/schedules/fast").json()["suspended"] is True
            page.click("#schedule-toggle")
            expect(page.locator("#schedule-state")).to_have_text("active", timeout=30_000)
            # a workflow's page and a worker's
            page.goto(f"{url}/workflows/health-and-restart")
            expect(page.locator("#workflow-name")).to_be_visible(timeout=30_000)
            accessible(page, "workflow")
            fits(page, "workflow", shots)
            page.click("header h1 a")
            page.locator("#workers tbody tr[data-worker] a").first.click(timeout=30_000)
            expect(page.locator("#page .facts")).to_contain_text("heartbeat", timeout=30_000)
            accessible(page, "worker")
            fits(page, "worker", shots)
            # a running run's output grows in place; stderr folded by the user stays folded
            run_id = c.post("/api/jobs/grows/run").json()["run_id"]
            page.goto(f"{url}/runs/{run_id}")
            box = page.locator('#page .target[data-target="localhost"]')
            stdout = box.locator('details[data-stream="stdout"]')
            expect(stdout.locator(".line")).to_have_text(["line 1"], timeout=30_000)
            box.locator('details[data-stream="stderr"] summary').click()
            stdout.evaluate("d => { d.kept = true; }")
            (tmp_path / "GO1").touch()
            expect(stdout.locator(".line")).to_have_text(["line 1", "line 2"], timeout=10_000)
            expect(page.locator("#run-state")).to_have_text("STARTED")
            assert stdout.evaluate("d => d.kept") is True  # the same box, grown
            assert box.locator('details[data-stream="stderr"]').evaluate("d => d.open") is False
            accessible(page, "run-live")
            fits(page, "run-live", shots)
            (tmp_path / "GO2").touch()
            (tmp_path / "GO3").touch()
            expect(page.locator("#run-state")).to_have_text("SUCCESS", timeout=30_000)
            expect(stdout.locator(".line")).to_have_text(["line 1", "line 2", "line 3"])
            # a commit refused: the overview shows both revisions and its error at file:line
            (repo / "jobs.d" / "broken.yaml").write_text(
                "jobs:\n  broken: {queue: nowhere, targets: [localhost], steps: [{command: x}]}\n")
            git(repo, "add", "-A")
            git(repo, "commit", "-q", "-m", "a job on a queue that does not exist")
            page.goto(url + "/")
            expect(page.locator("#error-list li").first).to_contain_text(
                "jobs.d/broken.yaml:2", timeout=30_000)
            expect(page.locator("#config-facts")).to_contain_text("refused")
            accessible(page, "overview-refused")
        finally:
            page.unroute_all(behavior="ignoreErrors")
            browser.close()
    print(f"dashboard screenshots: {shots}")
    assert {p.name for p in shots.glob("*.png")} >= {
        f"{n}.png" for n in ("run", "overview", "runs", "job", "schedule", "workflow", "worker",
                             "run-live")}
