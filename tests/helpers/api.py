"""A real `runner api` process on a free loopback port in front of a real Cluster (workers on
Redis or on the embedded default), with a viewer and an operator token; the browser tests'
chromium."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.helpers.cluster import Cluster
from tests.helpers.procs import poll
from tests.helpers.repos import copy_demo, git
from tests.servers import free_port, wait_port

VIEW = "view-token-0123456789abcdef"
OPS = "ops-token-0123456789abcdef"
TOKENS = "viewer:vera=env:TEST_VIEW_TOKEN,operator:otto=env:TEST_OPS_TOKEN"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


class Api:
    """`runner api` on the cluster's repository and environment, with the tokens above."""

    def __init__(self, cluster: Cluster, extra_env: dict[str, str] | None = None) -> None:
        self.cluster = cluster
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**cluster.env, "RUNNER_API_TOKENS": TOKENS, "TEST_VIEW_TOKEN": VIEW,
               "TEST_OPS_TOKEN": OPS, **(extra_env or {})}
        self.log = cluster.repo / f"api.{self.port}.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "runner", "api", "--repo", str(cluster.repo), "--bind",
                 f"127.0.0.1:{self.port}"], env=env, stdout=log, stderr=log,
                start_new_session=True)
        wait_port(self.port, self.proc, 30)

    def client(self, token: str | None = OPS) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def start_api(cluster: Cluster, extra_env: dict[str, str] | None = None) -> Api:
    """An Api in front of `cluster`, `extra_env` added to its environment."""
    return Api(cluster, extra_env)


def wait_state(client: httpx.Client, run_id: str, states: tuple[str, ...],
               deadline: float = 60) -> dict[str, Any]:
    """The run's record once GET /api/runs/RUN_ID says it is in one of `states`."""
    def check() -> dict[str, Any] | None:
        r = client.get(f"/api/runs/{run_id}")
        body: dict[str, Any] = r.json()
        return body if r.status_code == 200 and body.get("state") in states else None
    return dict(poll(check, deadline, f"run {run_id} reaches {states}"))


def ws_events(url: str, token: str) -> Any:
    """A connected, authenticated WebSocket client (websockets' sync client)."""
    from websockets.sync.client import connect

    ws = connect(url.replace("http://", "ws://") + "/api/events", open_timeout=10,
                 legacy=True)
    ws.send(json.dumps({"token": token}))
    return ws


def conforms(client: httpx.Client) -> None:
    """Real answers (run records with a worker's results and an operator's actions, a live
    worker) read back through the models of the OpenAPI document, strictly (no coercion)."""
    from pydantic import TypeAdapter

    from runner.api import models as m

    def check(path: str, model: Any) -> Any:
        r = client.get(path)
        assert r.status_code == 200, (path, r.text[:500])
        return TypeAdapter(model).validate_json(r.content, strict=True)

    page = check("/api/runs?limit=500", m.RunPage)
    assert page.runs
    records = [check(f"/api/runs/{run.run_id}", m.Run) for run in page.runs]
    assert any(r.result and r.result.targets for r in records)
    assert any(r.actions for r in records)
    assert check("/api/workers", m.Workers).workers  # the live worker, all its fields
    for path, model in (("/api/health", m.Health), ("/api/whoami", m.Who),
                        ("/api/status", m.Status), ("/api/stats", m.Stats),
                        ("/api/queues", dict[str, m.Queue]),
                        ("/api/jobs", m.Jobs), ("/api/schedules", dict[str, m.Schedule]),
                        ("/api/workflows", m.Workflows)):
        check(path, model)


@contextmanager
def up_on_demo(tmp_path: Path, files: dict[str, str]
            ) -> Iterator[tuple[str, Path, dict[str, str], subprocess.Popen[bytes]]]:
    """`runner up` (embedded: no REDIS_URL, no token settings) on a git repository holding
    the demo plus `files` (path: text); (its URL, the repository, its environment, up)."""
    repo = copy_demo(tmp_path / "demo")
    for path, text in {**files, ".gitignore": ".runner/\n"}.items():
        (repo / path).write_text(text)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"demo, {', '.join(files)}")
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "RUNNER_API_TOKENS", "RUNNER_API_JWT_KEY")}
    env["RUNNER_CACHE_DIR"] = str(tmp_path / "cache")
    port = free_port()
    with open(tmp_path / "up.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "runner", "up", "--repo", str(repo),
                                 "--api-bind", f"127.0.0.1:{port}"], env=env, stdout=log,
                                stderr=log, start_new_session=True)
    try:
        wait_port(port, proc, 60)
        yield f"http://127.0.0.1:{port}", repo, env, proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
