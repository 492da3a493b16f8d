"""Run parameters end to end: `runner run -p`, a real worker on the embedded default, retry,
the API's 422, and SSH: values reach commands only as RUNNER_PARAM_<NAME>, as literals."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from runner.celery.app import create_app
from runner.celery.beat import Beat
from runner.celery.tasks import _Process, execute
from runner.runs import RunRecord, new_run_id
from runner.settings import Settings
from runner.system import System
from tests.helpers.api import start_api
from tests.helpers.cluster import Cluster
from tests.helpers.repos import copy_demo, git, small_repo
from tests.servers import Sshd

JOBS = """\
jobs:
  restart-service:
    queue: q
    targets: [here]
    params:
      service: {type: string, enum: [nginx, app], default: app}
      batch: {type: integer, minimum: 1, maximum: 50, default: 5}
    steps:
      - {command: 'echo "service=$RUNNER_PARAM_SERVICE batch=$RUNNER_PARAM_BATCH"'}
  echo-text:
    queue: q
    targets: [here]
    params:
      text: {type: string}
    steps:
      - {command: 'printf "got:%s\\n" "$RUNNER_PARAM_TEXT"'}
"""


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A worker `w` on the embedded default (no REDIS_URL) of a repository with JOBS."""
    env = {**os.environ, "RUNNER_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("REDIS_URL", None)
    repo = small_repo(tmp_path / "config", JOBS)
    (repo / "workflows.d").mkdir()
    (repo / "workflows.d" / "w.yaml").write_text(
        "workflows:\n  flow:\n    nodes:\n"
        "      first: {job: restart-service, params: {service: nginx, batch: 7}}\n")
    git(repo, "init", "-q", "-b", "main")  # the report branch is kept in it
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "params")
    c = Cluster(repo, env)
    c.worker("w")
    yield c
    c.stop()


def _stdout(record: RunRecord) -> str:
    return str((record.result or {})["targets"]["here"]["stdout"])


def test_a_param_reaches_the_command_as_env_and_retry_keeps_it(cluster: Cluster) -> None:
    done = cluster.runner("run", "restart-service", "-p", "service=nginx", "--enqueue")
    assert done.returncode == 0, done.stderr
    record = cluster.final(done.stdout.strip())
    assert record.state == "SUCCESS", record.error
    assert record.params == {"service": "nginx", "batch": 5}  # the default filled in
    assert _stdout(record) == "service=nginx batch=5\n"
    history = cluster.runner("history", "restart-service")
    assert "params: service=nginx batch=5" in history.stdout, history.stdout

    again = cluster.runner("retry", record.run_id)
    assert again.returncode == 0, again.stderr
    retried = cluster.final(again.stdout.split()[0])
    assert retried.retry_of == record.run_id
    assert retried.params == {"service": "nginx", "batch": 5}
    assert _stdout(retried) == "service=nginx batch=5\n"

    published = cluster.runner("publish", "--once")
    assert published.returncode == 0, published.stderr
    files = git(cluster.repo, "ls-tree", "-r", "--name-only", "reports").splitlines()
    path = next(f for f in files if f.endswith(f"/{record.run_id}/result.json"))
    result = json.loads(git(cluster.repo, "show", f"reports:{path}"))
    assert result["params"] == {"service": "nginx", "batch": 5}


def test_a_workflow_node_gives_its_params_to_its_child_run(cluster: Cluster) -> None:
    assert cluster.runner("run", "flow", "-p", "service=app").returncode == 2  # takes none
    done = cluster.runner("run", "flow", "--enqueue")
    assert done.returncode == 0, done.stderr
    flow = cluster.final(done.stdout.strip())
    assert flow.state == "SUCCESS", flow.error
    assert flow.params is None
    child = cluster.store.run(str((flow.workflow or {})["nodes"]["first"]["run_id"]))
    assert child is not None and child.params == {"service": "nginx", "batch": 7}
    assert _stdout(child) == "service=nginx batch=7\n"


def test_a_value_outside_the_enum_is_refused_before_anything_is_queued(
        cluster: Cluster) -> None:
    done = cluster.runner("run", "restart-service", "-p", "service=x; rm -rf /", "--enqueue")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: job 'restart-service' was not run: parameter 'service' must be one of "
        "'nginx', 'app'; found 'x; rm -rf /'")
    assert cluster.store.runs(None, 10) == []
    direct = cluster.runner("run", "restart-service", "-p", "batch=0", "-p", "nope=1")
    assert direct.returncode == 2 and "unknown parameter 'nope'" in direct.stderr
    assert "'batch' must be at least 1" in direct.stderr
    assert cluster.store.runs(None, 10) == []


def test_shell_metacharacters_in_a_free_string_stay_a_literal(cluster: Cluster) -> None:
    pwned = cluster.repo / "pwned"
    value = f"$(touch {pwned}); ;|& `touch {pwned}` '\"\n"
    done = cluster.runner("run", "echo-text", "-p", f"text={value}", "--enqueue")
    assert done.returncode == 0, done.stderr
    record = cluster.final(done.stdout.strip())
    assert record.state == "SUCCESS", record.error
    assert _stdout(record) == f"got:{value}\n"
    assert not pwned.exists()


def test_the_api_takes_params_in_the_body_and_refuses_a_wrong_one_with_422(
        cluster: Cluster) -> None:
    api = start_api(cluster)
    try:
        with api.client() as ops:
            wrong = ops.post("/api/jobs/restart-service/run", json={"params": {"batch": "3"}})
            assert wrong.status_code == 422, wrong.text
            assert wrong.json()["detail"] == [{
                "loc": ["body", "params"], "type": "value_error",
                "msg": "job 'restart-service' was not run: parameter 'batch' must be an "
                       "integer; found '3'"}]
            assert cluster.store.runs(None, 10) == []
            ok = ops.post("/api/jobs/restart-service/run", json={"params": {"batch": 3}})
            assert ok.status_code == 201, ok.text
            record = cluster.final(ok.json()["run_id"])
            assert record.params == {"service": "app", "batch": 3}
            assert _stdout(record) == "service=app batch=3\n"
            assert ops.get(f"/api/runs/{record.run_id}").json()["params"] == record.params
            plain = ops.post("/api/jobs/restart-service/run")  # no body: the defaults
            assert cluster.final(plain.json()["run_id"]).params == {"service": "app",
                                                                     "batch": 5}
    finally:
        api.stop()


def test_a_param_reaches_an_ssh_target_as_env(sshd: Sshd, tmp_path: Path) -> None:
    repo = small_repo(tmp_path / "config", JOBS.replace("[here]", "[remote]"))
    (repo / "targets.d" / "ssh.yaml").write_text(
        yaml.safe_dump({"targets": {"remote": sshd.target()}}))
    pwned = tmp_path / "pwned"
    value = f"$(touch {pwned}); ;|&"
    env = {**os.environ, "RUNNER_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("REDIS_URL", None)
    c = Cluster(repo, env)
    done = c.runner("run", "echo-text", "-p", f"text={value}", "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    target = json.loads(done.stdout)["targets"]["remote"]
    assert target["stdout"] == f"got:{value}\n"
    assert not pwned.exists()


def test_a_schedule_gives_its_params_to_the_runs_beat_fires(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)  # the embedded store
    repo = copy_demo(tmp_path / "config")
    (repo / "schedules.d" / "ops.yaml").write_text(
        "schedules:\n  five: {job: restart-service, every: 5m, params: {service: nginx}}\n")
    system = System(Settings(), repo, repo / ".runner")
    now = [datetime(2026, 11, 25, 12, 1, tzinfo=UTC)]
    beat = Beat(system, create_app(system), clock=lambda: now[0])
    assert beat.tick()
    now[0] = datetime(2026, 11, 25, 12, 5, 1, tzinfo=UTC)
    beat.tick()
    runs = [r for r in system.store.runs(limit=10) if r.schedule == "five"]
    assert [(r.state, r.params) for r in runs] == [("PENDING", {"service": "nginx"})]


def test_a_message_without_params_runs_with_the_defaults(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """A message of Celery's own beat (`runner plan --format celery`) names no params."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("RUNNER_CACHE_DIR", str(tmp_path / "cache"))
    repo = small_repo(tmp_path / "repo", JOBS)
    system = System(Settings(), repo, repo / ".runner")
    run_id = new_run_id()
    system.store.save_run(RunRecord.from_json({
        "run_id": run_id, "job": "restart-service", "state": "PENDING", "queue": "q",
        "created": time.time(), "trigger": "celery-beat"}))
    state, error = execute(system, _Process(), "restart-service", system.config().revision,
                           run_id, None, "w-1@here", False)
    assert (state, error) == ("SUCCESS", None)
    assert _stdout(system.store.run(run_id) or RunRecord(run_id)) == "service=app batch=5\n"
