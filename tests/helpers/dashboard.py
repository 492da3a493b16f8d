"""What the browser tests of the dashboard share: axe-core's check (from tests/.npm, where
`make test` installs it), the no-horizontal-overflow check with a viewport screenshot, and
stand-ins for the endpoints of issue 23's second wave an API may not serve yet (each used
only when the real one answers 404; they read real state: the test job's output files, the
queues' real lengths, the schedules' real firings, `runner suspend`)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

AXE = Path(__file__).parents[1] / ".npm" / "node_modules" / "axe-core" / "axe.min.js"
SERIOUS = ("async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
           ".filter((v) => ['serious', 'critical'].includes(v.impact))"
           ".map((v) => `${v.id}: ${v.help} at ${v.nodes.slice(0, 3).map((n) => n.target.join(' '))"
           ".join(', ')}`)")


def accessible(page: Any, name: str) -> None:
    """axe-core in the page (the context bypasses the CSP) finds no serious or critical
    violation."""
    assert AXE.exists(), f"{AXE} is missing: `make test` installs it (npm install --prefix " \
                         "tests/.npm axe-core)"
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    found = page.evaluate(SERIOUS)
    assert found == [], f"{name}: {found}"


def fits(page: Any, name: str, shots: Path) -> None:
    """No horizontal scroll of the page at 800 and 1400 px; the viewport at 1400 px into
    shots/NAME.png."""
    for width in (800, 1400):
        page.set_viewport_size({"width": width, "height": 900})
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= width, f"{name} is {wide} px wide at {width}"
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(shots / f"{name}.png"))


class Contract:
    """Routes of the second wave for a browser page, answered by the API when it serves them,
    else from real state here. `output_of(run_id)` is the stand-in's {"running", "targets"}."""

    def __init__(self, url: str, token: str, repo: Path, env: dict[str, str],
                 output_of: Callable[[str], dict[str, Any]]) -> None:
        self.url, self.repo, self.env, self.output_of = url, repo, env, output_of
        self.client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                                   timeout=30)
        self.samples: dict[str, list[list[float]]] = {}
        self.stood_in: set[str] = set()

    def install(self, page: Any) -> None:
        page.route("**/openapi.json", self._openapi)
        page.route("**/api/runs/*/output", self._output)
        page.route("**/api/stats?*", self._stats)
        page.route("**/api/schedules/*/suspend", self._suspend)
        page.route("**/api/schedules/*/resume", self._suspend)

    def _openapi(self, route: Any) -> None:
        doc = route.fetch().json()
        for path, method in (("/api/runs/{run_id}/output", "get"),
                             ("/api/schedules/{name}/suspend", "post"),
                             ("/api/schedules/{name}/resume", "post")):
            doc["paths"].setdefault(path, {}).setdefault(method, {})
        route.fulfill(json=doc)

    def _output(self, route: Any) -> None:
        real = route.fetch()
        if real.status != 404:
            route.fulfill(response=real)
            return
        self.stood_in.add("output")
        route.fulfill(json=self.output_of(route.request.url.rsplit("/", 2)[1]))

    def _stats(self, route: Any) -> None:
        real = route.fetch()
        body = real.json()
        if "queues" not in body:  # the queues' lengths, sampled on each read
            self.stood_in.add("stats")
            now = time.time()
            for q, info in self.client.get("/api/queues").json().items():
                self.samples.setdefault(q, [[now - 600, 0]]).append([now, info["length"]])
            body["queues"] = self.samples
        if "count" in body.get("lateness", {}):  # the histogram only: per schedule, its last
            late = {}
            for name in self.client.get("/api/schedules").json():
                firings = self.client.get(f"/api/schedules/{name}").json()["firings"]
                if firings and firings[0]["late"] is not None:
                    late[name] = firings[0]["late"]
            body["lateness"] = late
        route.fulfill(response=real, json=body)

    def _suspend(self, route: Any) -> None:
        real = route.fetch()
        if real.status != 404:
            route.fulfill(response=real)
            return
        self.stood_in.add("suspend")
        name, verb = route.request.url.rsplit("/", 2)[1:]
        subprocess.run([sys.executable, "-m", "runner", verb, name, "--repo", str(self.repo)],
                       env=self.env, check=True, capture_output=True)
        route.fulfill(json={"schedule": name, "suspended": verb == "suspend"})
