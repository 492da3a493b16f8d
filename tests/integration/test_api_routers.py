"""Each router of `runner api` runs alone: a bare FastAPI app with a Context in its state
and one router answers that router's routes (auth included) and nothing else."""

import hashlib
import time
from pathlib import Path

import pytest
import redis
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from runner.api import approvals, control, read
from runner.api.app import build_context, create_api
from runner.api.auth import Auth
from runner.runs import new_run_id
from runner.settings import Settings
from runner.store.entries import PublisherStatus, write_publisher
from runner.system import System
from tests.servers import Redis

VIEWER, OPERATOR = "v" * 20, "o" * 20
AUTH = Auth((("viewer", "viewer", hashlib.sha256(VIEWER.encode()).digest()),
             ("operator", "ops", hashlib.sha256(OPERATOR.encode()).digest())))


def alone(router: APIRouter, system: System) -> TestClient:
    """A client of an app holding only `router` (no lifespan: no hub, no poller)."""
    app = FastAPI()
    app.state.context = build_context(system, AUTH)
    app.include_router(router)
    return TestClient(app)


def test_the_control_router_runs_a_job_alone(demo_repo: Path, redis_server: Redis) -> None:
    redis.Redis.from_url(redis_server.url).flushall()
    system = System(Settings(redis_url=redis_server.url), demo_repo, demo_repo / ".runner")
    client = alone(control.router, system)
    job = next(iter(system.config().jobs))
    viewer = client.post(f"/api/jobs/{job}/run", headers={"Authorization": f"Bearer {VIEWER}"})
    assert viewer.status_code == 403, viewer.text
    r = client.post(f"/api/jobs/{job}/run", headers={"Authorization": f"Bearer {OPERATOR}"})
    assert r.status_code == 201, r.text
    record = system.store.run(r.json()["run_id"])
    assert record and record.actions[0]["by"] == "ops"
    assert client.get("/api/health").status_code == 404  # a read route: not this router's


def test_the_read_router_answers_alone(demo_repo: Path, redis_server: Redis) -> None:
    redis.Redis.from_url(redis_server.url).flushall()
    system = System(Settings(redis_url=redis_server.url), demo_repo, demo_repo / ".runner")
    client = alone(read.router, system)
    assert client.get("/api/health").json()["store"] is True
    assert client.get("/api/whoami").status_code == 401
    who = client.get("/api/whoami", headers={"Authorization": f"Bearer {VIEWER}"})
    assert who.json() == {"name": "viewer", "role": "viewer"}
    assert client.post("/api/runs/x/cancel",
                       headers={"Authorization": f"Bearer {OPERATOR}"}).status_code == 404


def test_cancel_retry_and_approve_of_an_unknown_run_answer_404_whatever_the_configuration(
        demo_repo: Path, redis_server: Redis) -> None:
    redis.Redis.from_url(redis_server.url).flushall()
    (demo_repo / "queues.yaml").write_text("queues: [unclosed\n")  # nothing loads
    system = System(Settings(redis_url=redis_server.url), demo_repo, demo_repo / ".runner")
    client = alone(control.router, system)
    for verb in ("cancel", "retry"):
        r = client.post(f"/api/runs/no-such-run/{verb}",
                        headers={"Authorization": f"Bearer {OPERATOR}"})
        assert r.status_code == 404 and "no-such-run" in r.text, (verb, r.text)
    client = alone(approvals.router, system)
    for verb in ("approve", "reject"):
        r = client.post(f"/api/runs/no-such-run/nodes/gate/{verb}",
                        headers={"Authorization": f"Bearer {OPERATOR}"})
        assert r.status_code == 404 and "no-such-run" in r.text, (verb, r.text)


def test_an_unknown_run_is_404_when_the_report_branch_is_on_another_host(
        demo_repo: Path, redis_server: Redis, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The publisher's git directory is not on the API's host (Redis deployments): the
    report branch is not read here; git that cannot run is a 503 with a sentence."""
    redis.Redis.from_url(redis_server.url).flushall()
    system = System(Settings(redis_url=redis_server.url), demo_repo, demo_repo / ".runner")
    elsewhere = tmp_path / "reports.git"
    write_publisher(system.store, PublisherStatus("reports", "a" * 40, None, 0, None,
                                                  str(elsewhere), time.time()))
    client = TestClient(create_api(system, AUTH))  # no lifespan: no hub, no poller
    viewer = {"Authorization": f"Bearer {VIEWER}"}
    run_id = new_run_id()
    for path in (f"/api/runs/{run_id}", f"/api/runs/{run_id}/output"):
        r = client.get(path, headers=viewer)
        assert r.status_code == 404 and r.json()["detail"] == f"there is no run {run_id!r}", r.text
    elsewhere.mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))
    r = client.get(f"/api/runs/{run_id}", headers=viewer)
    assert r.status_code == 503 and r.json()["detail"].startswith(
        f"cannot run git in {elsewhere}: No such file or directory"), r.text
