"""The dashboard in headless Chromium (Debian's /usr/bin/chromium, driven by playwright; no
browser is downloaded), against a real API, Redis and worker processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.api_servers import (
    OPS,
    Api,
    redis_cluster,  # noqa: F401 - fixture
    start_api,
)
from tests.integration.test_celery import Cluster

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def api(redis_cluster: Cluster) -> Iterator[Api]:  # noqa: F811
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
            done.click()  # drill down: the target's output
            expect(page.locator("#detail-id")).to_have_text(str(run_id))
            expect(page.locator('#detail details[data-target="here"] pre').first) \
                .to_contain_text("side", timeout=10_000)
            # a running one: press cancel and see it end REVOKED
            with api.client(OPS) as ops:
                slow = ops.post("/api/jobs/slow/run").json()["run_id"]
            row = page.locator(f'#runs tr[data-run-id="{slow}"]')
            expect(row).to_have_attribute("data-state", "STARTED", timeout=60_000)
            row.locator("button.cancel").click()
            expect(row).to_have_attribute("data-state", "REVOKED", timeout=30_000)
            expect(page.locator("#workers tbody tr")).to_have_count(1, timeout=30_000)
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"dashboard screenshot: {shot}")
            assert shot.stat().st_size > 10_000
        finally:
            browser.close()
    with api.client(OPS) as ops:
        record = ops.get(f"/api/runs/{slow}").json()
    assert record["state"] == "REVOKED" and record["actions"][-1]["action"] == "cancel"
