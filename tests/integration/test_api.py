"""`runner api` for real: a uvicorn server on a free port, in front of real Redis (or the
embedded store) and real worker processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from runner.runs import RunRecord
from runner.store import open_store
from tests.helpers.api import OPS, VIEW, Api, conforms, start_api, wait_state, ws_events
from tests.helpers.cluster import Cluster
from tests.helpers.procs import poll


@pytest.fixture
def api(redis_cluster: Cluster) -> Iterator[Api]:
    server = start_api(redis_cluster)
    yield server
    server.stop()


def _events_until(ws: Any, done: Any, deadline: float = 60) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            event = json.loads(ws.recv(timeout=max(0.1, end - time.monotonic())))
        except TimeoutError:
            break
        seen.append(event)
        if done(event):
            return seen
    raise AssertionError(f"no final event within {deadline}s; saw {seen[-5:]}")


def test_tokens_roles_and_health(api: Api) -> None:
    with api.client(None) as anon, api.client(VIEW) as viewer, api.client("x" * 30) as wrong:
        health = anon.get("/api/health")
        assert health.status_code == 200 and health.json()["store"] is True
        assert anon.get("/metrics").status_code == 200
        for path in ("/api/status", "/api/runs", "/api/workers", "/api/jobs", "/api/queues",
                     "/api/schedules", "/api/stats"):
            missing = anon.get(path)
            assert missing.status_code == 401, path
            assert missing.headers["www-authenticate"] == "Bearer"
            assert wrong.get(path).status_code == 401
            assert viewer.get(path).status_code == 200, path
        # a page of runs kept for a token is never answered to a missing or wrong one
        assert anon.get("/api/runs").status_code == 401 == wrong.get("/api/runs").status_code
        assert anon.get("/api/runs", headers={"Authorization": "Basic " + VIEW}
                        ).status_code == 401
        assert viewer.get("/api/whoami").json() == {"name": "vera", "role": "viewer"}
        refused = viewer.post("/api/jobs/quick-high/run")
        assert refused.status_code == 403 and "operator" in refused.json()["detail"]
        assert viewer.post("/api/runs/nope/cancel").status_code == 403
    log = api.log.read_text()
    assert VIEW not in log and OPS not in log and "x" * 30 not in log


def test_trigger_watch_live_and_read_the_run(api: Api) -> None:
    cluster = api.cluster
    cluster.worker("busy")
    ws = ws_events(api.url, VIEW)
    snapshot = json.loads(ws.recv(timeout=30))
    assert snapshot["kind"] == "snapshot" and "queues" in snapshot and "status" in snapshot
    with api.client(OPS) as ops:
        created = ops.post("/api/jobs/quick-high/run")
        assert created.status_code == 201, created.text
        run_id = created.json()["run_id"]
        events = _events_until(ws, lambda e: e.get("run_id") == run_id
                               and e["state"] == "SUCCESS")
        states = [e["state"] for e in events if e.get("run_id") == run_id]
        # pushed as it happened, in order: queued, taken by the worker, started, done
        assert states[0] == "PENDING" and states[-1] == "SUCCESS" and "STARTED" in states
        assert events[-1]["run"]["target_status"] == {"here": "success"}
        record = ops.get(f"/api/runs/{run_id}").json()
        assert record["trigger"] == "api" and record["worker"].startswith("busy-")
        assert record["created"] <= record["received"] <= record["started"] <= record["finished"]
        assert record["result"]["targets"]["here"]["stdout"] == "high\n"
        assert record["actions"][0]["action"] == "run" and record["actions"][0]["by"] == "otto"
        listed = ops.get("/api/runs", params={"job": "quick-high"}).json()
        assert [r["run_id"] for r in listed["runs"]] == [run_id]
        assert "result" not in listed["runs"][0]  # a listing carries no output
        assert ops.get("/api/runs", params={"state": "FAILURE"}).json()["runs"] == []
        assert ops.get("/api/runs/no-such-run").status_code == 404
        assert ops.post("/api/jobs/no-such-job/run").status_code == 404
        # secrets stay masked through the API
        secret = ops.post("/api/jobs/secretive/run").json()["run_id"]
        cluster.worker("side")
        masked = wait_state(ops, secret, ("SUCCESS",))
        assert masked["result"]["targets"]["here"]["stdout"] == "pw=********\n"
        assert "hunter2" not in ops.get("/api/runs").text
        metrics = ops.get("/metrics").text
        assert 'runner_runs_total{job="quick-high",state="SUCCESS"} 1' in metrics
        assert 'runner_run_duration_seconds_count{job="quick-high"} 1' in metrics
        assert 'runner_queue_length{queue="high"} 0' in metrics
        stats = ops.get("/api/stats", params={"minutes": 10}).json()
        assert stats["by_state"].get("SUCCESS", 0) >= 1 and "quick-high" in stats["durations"]
    ws.close()


def test_cancel_from_the_api_ends_revoked_and_is_recorded(api: Api) -> None:
    cluster = api.cluster
    cluster.worker("side")
    with api.client(OPS) as ops:
        run_id = ops.post("/api/jobs/slow/run").json()["run_id"]
        wait_state(ops, run_id, ("STARTED",))
        cancelled = ops.post(f"/api/runs/{run_id}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["previous"] == "STARTED"
        record = wait_state(ops, run_id, ("REVOKED",), 30)
        assert [a["action"] for a in record["actions"]] == ["run", "cancel"]
        assert record["actions"][1]["by"] == "otto" and record["actions"][1]["via"] == "api"
        assert record["result"]["targets"]["here"]["error"] == (
            "here: cancelled by otto via the API during step 'command 1'")
        assert ops.post(f"/api/runs/{run_id}/cancel").status_code == 409
        retried = ops.post(f"/api/runs/{run_id}/retry")
        assert retried.status_code == 201
        new = ops.get(f"/api/runs/{retried.json()['run_id']}").json()
        assert new["trigger"] == f"retry-of {run_id}" and new["retry_of"] == run_id
        assert new["actions"][0] == {**new["actions"][0], "action": "retry", "of": run_id}
        ops.post(f"/api/runs/{new['run_id']}/cancel")
        ended = wait_state(ops, new["run_id"], ("REVOKED",), 30)
        assert "cancelled by otto via the API" in ended["error"]


def test_workers_queues_jobs_schedules(api: Api) -> None:
    cluster = api.cluster
    (cluster.repo / "schedules.d" / "s.yaml").write_text(
        "schedules:\n  often: {job: quick-low, every: 1h}\n")
    cluster.worker("side")
    with api.client(VIEW) as viewer:
        workers = poll(lambda: (w := viewer.get("/api/workers").json()["workers"]) and all(
            v["memory_kib"] for v in w.values()) and w, 30, "the worker is listed")
        (_host, w), = workers.items()
        assert w["name"] == "side" and w["queues"] == ["other"] and w["concurrency"] == 2
        assert w["last_heartbeat"] > time.time() - 30 and w["memory_kib"] > 0
        assert set(viewer.get("/api/workers").json()["configured"]) == {"busy", "side"}
        queues = viewer.get("/api/queues").json()
        assert list(queues) == ["high", "low", "other"]  # by priority
        assert queues["high"]["priority"] == 9 and queues["other"]["consumers"] == 1
        jobs = viewer.get("/api/jobs").json()["jobs"]
        assert jobs["slow"]["queue"] == "other"
        schedules = poll(lambda: viewer.get("/api/schedules").json(), 10, "schedule read")
        assert schedules["often"]["job"] == "quick-low"
        assert schedules["often"]["when"] == "every 1h"  # as `runner plan` writes it
        assert schedules["often"]["next_fire"].endswith("+00:00")


def test_runs_pages_walk_every_run_once(api: Api) -> None:
    store = open_store(api.cluster.env["REDIS_URL"], api.cluster.repo / ".runner")
    base = time.time() - 3600
    for i in range(230):  # ties on the created time cross page boundaries
        store.save_run(RunRecord.from_json({"run_id": f"{int(base * 1000) + i // 3:012x}-{i:08x}",
                                            "job": "quick-low" if i % 2 else "quick-high",
                        "state": "SUCCESS" if i % 5 else "FAILURE", "queue": "low",
                                            "created": base + i // 3}))
    with api.client(VIEW) as viewer:
        seen: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = viewer.get("/api/runs", params={"limit": 40, **(
                {"cursor": cursor} if cursor else {})}).json()
            seen += page["runs"]
            cursor = page["next"]
            if not cursor:
                break
        assert len(seen) == 230 == len({r["run_id"] for r in seen})
        keys = [(r["created"], r["run_id"]) for r in seen]
        assert keys == sorted(keys, reverse=True)
        failed = viewer.get("/api/runs", params={"state": "FAILURE", "job": "quick-high",
                                                 "limit": 500}).json()["runs"]
        assert len(failed) == len([i for i in range(230) if i % 5 == 0 and i % 2 == 0])
        recent = viewer.get("/api/runs", params={"since": base + 70, "limit": 500}).json()
        assert {r["created"] for r in recent["runs"]} == {base + i // 3 for i in range(210, 230)}
        assert viewer.get("/api/runs", params={"cursor": "garbage"}).status_code == 400
        assert viewer.get("/api/runs", params={"cursor": "nan:x"}).status_code == 400
        assert viewer.get("/api/runs", params={"limit": 0}).status_code == 422


def test_embedded_events_are_pushed_from_the_state_directory(embedded_cluster: Cluster
                                                            ) -> None:
    server = start_api(embedded_cluster)
    try:
        embedded_cluster.worker("side")
        ws = ws_events(server.url, OPS)
        assert json.loads(ws.recv(timeout=30))["kind"] == "snapshot"
        with server.client(OPS) as ops:
            run_id = ops.post("/api/jobs/side-job/run").json()["run_id"]
            events = _events_until(ws, lambda e: e.get("run_id") == run_id
                                   and e["state"] == "SUCCESS")
            assert events[-1]["run"]["worker"].startswith("side-")
            workers = poll(lambda: ops.get("/api/workers").json()["workers"], 30, "worker")
            assert next(iter(workers.values()))["queues"] == ["other"]
            conforms(ops)  # the embedded store's records, as the OpenAPI document says
        ws.close()
    finally:
        server.stop()


def test_a_websocket_without_a_valid_token_is_closed(api: Api) -> None:
    from websockets.exceptions import ConnectionClosed

    ws = ws_events(api.url, "not-a-token")
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


def test_jwt_with_a_role_claim(redis_cluster: Cluster) -> None:
    import jwt

    key = "jwt-signing-key-0123456789abcdef0123456789"
    server = start_api(redis_cluster, {"RUNNER_API_JWT_KEY": "env:TEST_JWT_KEY",
                                       "TEST_JWT_KEY": key})
    try:
        soon = int(time.time()) + 600
        carol = jwt.encode({"role": "viewer", "sub": "carol", "exp": soon}, key, algorithm="HS256")
        forged = jwt.encode({"role": "operator", "sub": "mallory", "exp": soon}, "x" * 40,
                            algorithm="HS256")
        expired = jwt.encode({"role": "operator", "exp": int(time.time()) - 10}, key,
                             algorithm="HS256")
        endless = jwt.encode({"role": "operator", "sub": "eve"}, key, algorithm="HS256")
        with server.client(carol) as c:
            assert c.get("/api/whoami").json() == {"name": "carol", "role": "viewer"}
            assert c.post("/api/jobs/quick-high/run").status_code == 403
        for bad in (forged, expired, endless):
            with server.client(bad) as c:
                assert c.get("/api/status").status_code == 401
        with server.client(OPS) as c:  # the static tokens still work beside JWTs
            assert c.get("/api/whoami").json()["role"] == "operator"
    finally:
        server.stop()


@pytest.mark.parametrize(("value", "says"), [
    ("boss=env:X", "RUNNER_API_TOKENS entry 1 must be ROLE=REF"),
    ("viewer=plain-secret-value", "RUNNER_API_TOKENS entry 1 must be a reference"),
    ("viewer=env:TEST_UNSET_TOKEN", "env:TEST_UNSET_TOKEN is not set"),
])
def test_malformed_token_settings_exit_2_naming_the_variable(
        embedded_cluster: Cluster, value: str, says: str) -> None:
    env = {**embedded_cluster.env, "RUNNER_API_TOKENS": value}
    env.pop("TEST_UNSET_TOKEN", None)
    done = subprocess.run([sys.executable, "-m", "runner", "api", "--repo",
                           str(embedded_cluster.repo), "--bind", "127.0.0.1:1"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr and "plain-secret-value" not in done.stderr
    assert "Traceback" not in done.stderr


def test_without_tokens_an_operator_token_file_is_generated(embedded_cluster: Cluster
                                                            ) -> None:
    server = start_api(embedded_cluster, {"RUNNER_API_TOKENS": ""})
    try:
        token_file = embedded_cluster.repo / ".runner" / "api-token"
        assert token_file.stat().st_mode & 0o777 == 0o600
        with server.client(token_file.read_text().strip()) as c:
            assert c.get("/api/whoami").json()["role"] == "operator"
        with server.client(VIEW) as c:
            assert c.get("/api/whoami").status_code == 401
    finally:
        server.stop()


def test_docs_and_dashboard_load_only_same_origin_files(embedded_cluster: Cluster
                                                        ) -> None:
    """/docs and / reference files of this server only (no CDN), each served; the favicon
    too. No /redoc: ReDoc always loads its logo from its CDN."""
    import re

    server = start_api(embedded_cluster)
    try:
        with server.client(None) as c:
            assert c.get("/redoc").status_code == 404
            for page, needs in (("/docs", "swagger-ui-bundle.js"), ("/", 'id="runs"')):
                html = c.get(page)
                assert html.status_code == 200 and needs in html.text, page
                assert "//" not in re.sub(r"<!--.*?-->", "", html.text, flags=re.S), page
                refs = re.findall(r"""(?:src|href|spec-url)=["']([^"']+)|url: '([^']+)'""",
                                  html.text)
                urls = {a or b for a, b in refs}
                assert len(urls) >= 3, (page, urls)  # script, style or spec, icon
                for url in urls:
                    assert url.startswith("/") and not url.startswith("//"), (page, url)
                    got = c.get(url)
                    assert got.status_code == 200 and len(got.content) > 100, (page, url)
            docs = c.get("/static/docs.js").text  # starts Swagger UI: no swagger.io badge
            assert "SwaggerUIBundle(" in docs and "validatorUrl: null" in docs
            icon = c.get("/favicon.ico")
            assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"
            assert icon.content.startswith(b"<svg")
    finally:
        server.stop()


def test_firing_lateness_in_metrics_stats_and_status(api: Api) -> None:
    from runner.ops.lateness import observe_lateness

    cluster = api.cluster
    quiet = cluster.runner("status")
    assert "lateness: no firing queued yet" in quiet.stdout, quiet.stderr
    observe_lateness(cluster.store, [0.05, 0.3, 0.4, 7.0], time.time())  # what beat calls
    with api.client(VIEW) as viewer:
        metrics = viewer.get("/metrics").text
        for line in ('# TYPE runner_schedule_lateness_seconds histogram',
                     'runner_schedule_lateness_seconds_bucket{le="0.1"} 1',
                     'runner_schedule_lateness_seconds_bucket{le="0.5"} 3',
                     'runner_schedule_lateness_seconds_bucket{le="10.0"} 4',
                     'runner_schedule_lateness_seconds_bucket{le="+Inf"} 4',
                     'runner_schedule_lateness_seconds_sum 7.750000',
                     'runner_schedule_lateness_seconds_count 4'):
            assert line in metrics.splitlines(), line
        late = viewer.get("/api/stats").json()["lateness_histogram"]
        assert (late["count"], late["p50"], late["last"]) == (4, 0.375, 7.0)
    shown = json.loads(cluster.runner("status", "--format", "json").stdout)["lateness"]
    assert shown == late
    assert "lateness: 4 firings, p50 0.375s, p99 9.8s (estimated), last 7.000s late" in \
        cluster.runner("status").stdout
