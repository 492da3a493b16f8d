"""The dashboard's server side, wave 2, for real: a run's downloaded files and its output while
it runs, a worker's page, suspend and resume from the API with beat honouring them, queue
lengths over time and each schedule's lateness; one `runner api`, one worker and one beat on
Redis (the output also on the embedded store)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from runner.store import keys
from tests.helpers.api import OPS, VIEW, Api, start_api, wait_state
from tests.helpers.cluster import Cluster, make_cluster
from tests.helpers.procs import poll
from tests.servers import Redis

SECRET = "hunter2-very-secret"  # make_cluster's RUNNER_SECRET_JOB


def live_jobs(tmp: Path) -> str:
    """`chatty` prints, then waits for the file `go`; `fetch` downloads a file it wrote."""
    return f"""\
jobs:
  chatty:
    queue: other
    targets: [here]
    env: {{PASSWORD: env:RUNNER_SECRET_JOB}}
    steps:
      - name: talk
        command: >-
          echo first; echo "pw=$PASSWORD"; echo oops >&2;
          while [ ! -e {tmp}/go ]; do sleep 0.05; done; echo last
  fetch:
    queue: other
    targets: [here]
    env: {{PASSWORD: env:RUNNER_SECRET_JOB}}
    steps:
      - command: 'printf "report\\npw=%s\\n" "$PASSWORD" > "{tmp}/report v1.txt"'
      - download: {{src: "{tmp}/report v1.txt"}}
"""


SCHEDULES = """\
schedules:
  tick: {job: quick-low, every: 1s, overlap: allow}
  tock: {job: quick-low, every: 1s, overlap: allow}
"""


@dataclass(frozen=True)
class Site:
    api: Api
    cluster: Cluster
    tmp: Path


def _site(tmp: Path, redis_url: str | None, beat: bool) -> Site:
    cluster = make_cluster(tmp, redis_url)
    (cluster.repo / "jobs.d" / "live.yaml").write_text(live_jobs(tmp))
    if beat:
        (cluster.repo / "schedules.d" / "s.yaml").write_text(SCHEDULES)
    api = start_api(cluster)
    cluster.worker("side")  # queue `other`; nobody takes `low`
    return Site(api, cluster, tmp)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, redis_server: Redis) -> Iterator[Site]:
    s = _site(tmp_path_factory.mktemp("live"), redis_server.url, beat=True)
    with s.api.client(OPS) as ops:  # waiting in `low` when beat's first sample is taken
        for _ in range(2):
            assert ops.post("/api/jobs/quick-low/run").status_code == 201
    s.cluster.start("beat")
    yield s
    s.api.stop()
    s.cluster.stop()


def watch_output(site: Site) -> None:
    """A running run's output shows its first lines (masked) before it ends; then the
    record's, and the worker's entry of it is gone."""
    with site.api.client(OPS) as ops, site.api.client(VIEW) as viewer:
        run_id = ops.post("/api/jobs/chatty/run").json()["run_id"]

        def shown() -> dict[str, Any] | None:
            r = viewer.get(f"/api/runs/{run_id}/output")
            assert r.status_code == 200 and SECRET not in r.text, r.text
            body: dict[str, Any] = r.json()
            here = body["targets"].get("here") or {}
            return body if "pw=" in here.get("stdout", "") else None
        body = poll(shown, 30, "the first lines of the running run")
        assert body == {"running": True, "targets": {"here": {
            "stdout": "first\npw=********\n", "stderr": "oops\n", "step": "talk"}}}
        assert site.cluster.state(run_id) == "STARTED"
        (site.tmp / "go").touch()
        wait_state(viewer, run_id, ("SUCCESS",), 30)
        assert viewer.get(f"/api/runs/{run_id}/output").json() == {
            "running": False, "targets": {"here": {
                "stdout": "first\npw=********\nlast\n", "stderr": "oops\n", "step": None}}}
        poll(lambda: site.cluster.store.get(keys.output(run_id)) is None, 10,
             "the live output is deleted after the final record")
        assert viewer.get("/api/runs/nope/output").status_code == 404


def test_a_running_runs_output_streams_masked(site: Site) -> None:
    watch_output(site)


def test_a_running_runs_output_on_the_embedded_store(tmp_path: Path) -> None:
    s = _site(tmp_path, None, beat=False)
    try:
        watch_output(s)
    finally:
        s.api.stop()
        s.cluster.stop()


def test_a_downloaded_file_and_the_workers_page(site: Site) -> None:
    with site.api.client(OPS) as ops, site.api.client(VIEW) as viewer:
        run_id = ops.post("/api/jobs/fetch/run").json()["run_id"]
        record = wait_state(viewer, run_id, ("SUCCESS",), 30)
        [got] = record["result"]["targets"]["here"]["downloads"]
        r = viewer.get(f"/api/runs/{run_id}/downloads/{got['sha256']}")
        assert r.status_code == 200 and r.content == b"report\npw=********\n"  # masked
        assert hashlib.sha256(r.content).hexdigest() == got["sha256"]
        assert r.headers["content-type"] == "application/octet-stream"
        assert r.headers["content-disposition"] == (
            "attachment; filename=\"report v1.txt\"; filename*=UTF-8''report%20v1.txt")
        missing = viewer.get(f"/api/runs/{run_id}/downloads/{'0' * 64}")
        assert missing.status_code == 404 and missing.json()["detail"] == (
            f"run {run_id} downloaded no file of sha256 {'0' * 64}; GET /api/runs/{run_id} "
            "lists its downloads")
        assert viewer.get(f"/api/runs/nope/downloads/{'0' * 64}").status_code == 404

        host = poll(lambda: next((h for h in viewer.get("/api/workers").json()["workers"]
                                  if h.startswith("side-")), None), 30, "the worker's view")
        page = viewer.get(f"/api/workers/{host}").json()
        assert page["queues"] == ["other"] and page["celery_hostname"] == host
        assert 0 <= page["heartbeat_age"] < 30
        assert run_id in [r["run_id"] for r in page["runs"]]
        assert all(r["worker"] == host for r in page["runs"])
        unknown = viewer.get("/api/workers/nobody@nowhere")
        assert unknown.status_code == 404 and "GET /api/workers" in unknown.json()["detail"]


def _newest(client: httpx.Client, schedule: str) -> float:
    runs = client.get("/api/runs", params={"trigger": f"schedule {schedule}", "limit": 1}
                      ).json()["runs"]
    return float(runs[0]["created"]) if runs else 0.0


def test_suspend_and_resume_from_the_api_and_beat_honours_them(site: Site) -> None:
    with site.api.client(OPS) as ops, site.api.client(VIEW) as viewer:
        poll(lambda: _newest(viewer, "tick") > 0, 30, "beat fires tick")
        assert viewer.post("/api/schedules/tick/suspend").status_code == 403
        held = ops.post("/api/schedules/tick/suspend")
        at = time.time()
        assert held.json() == {"schedule": "tick", "suspended": True}
        mark = site.cluster.store.get(keys.SUSPENDED)["schedules"]["tick"]  # the audit
        assert mark["by"] == "otto via the API" and at - 5 < mark["at"] <= at
        assert viewer.get("/api/schedules/tick").json()["suspended"] is True
        assert ops.post("/api/schedules/nope/suspend").status_code == 404
        # tock goes on firing meanwhile: beat looked, and left tick alone
        poll(lambda: _newest(viewer, "tock") > at + 2.5, 30, "tock fires after the suspend")
        assert _newest(viewer, "tick") < at + 1.0
        assert ops.post("/api/schedules/tick/resume").json() == {"schedule": "tick",
                                                                  "suspended": False}
        back = time.time()
        assert viewer.get("/api/schedules/tick").json()["suspended"] is False
        poll(lambda: _newest(viewer, "tick") > back, 30, "tick fires again once resumed")


def test_stats_has_queue_lengths_over_time_and_each_schedules_lateness(site: Site) -> None:
    with site.api.client(VIEW) as viewer:
        def sampled() -> dict[str, Any] | None:
            stats: dict[str, Any] = viewer.get("/api/stats").json()
            return stats if stats["queues"].get("low") and stats["lateness"].keys() >= {
                "tick", "tock"} else None
        stats = poll(sampled, 30, "a sample of the queue lengths")
    assert set(stats["queues"]) == {"high", "low", "other"}
    [(at, length)] = stats["queues"]["low"][-1:]
    assert length >= 2 and time.time() - 300 < at <= time.time()  # the two queued first
    assert all(0 <= v < 60 for v in stats["lateness"].values())
    assert stats["lateness_histogram"]["count"] >= 2
