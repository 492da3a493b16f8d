"""A direct `runner run JOB` is audited like a worker's run: recorded in the store (trigger
`cli`), shown by `runner history`, committed by `runner publish`, cancelled by `runner cancel`;
and when the store cannot be reached it still runs, with one warning."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from runner.runs import RunRecord
from runner.store.entries import read_publisher, write_publisher
from runner.store.files import FileStore
from tests.helpers.procs import alive, matching, poll, running
from tests.helpers.repos import add_job, copy_demo, git, runner_on
from tests.servers import Redis

NO_REDIS = {"REDIS_URL": ""}


def isolated(server: Redis) -> dict[str, str]:
    """REDIS_URL of a database of its own on the test process's server, emptied."""
    import redis

    url = server.url.rsplit("/", 1)[0] + "/7"
    redis.Redis.from_url(url).flushdb()
    return {"REDIS_URL": url}


@pytest.mark.parametrize("where", ["embedded", "redis"])
def test_a_direct_run_reaches_history_and_the_report_branch(
        demo_repo: Path, where: str, request: pytest.FixtureRequest) -> None:
    env = NO_REDIS if where == "embedded" else isolated(request.getfixturevalue("redis_server"))
    done = runner_on(demo_repo, "run", "health-check", "--format", "json", env=env)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    run_id = printed["run_id"]
    shown = runner_on(demo_repo, "history", run_id, "--format", "json", env=env)
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)["runs"][0]
    assert (record["job"], record["state"], record["trigger"]) == ("health-check", "SUCCESS",
                                                                   "cli")
    assert record["revision"] == printed["revision"]
    assert record["worker"].startswith("cli-") and record["deliveries"] == 1
    assert record["started"] <= record["finished"]
    assert set(record["result"]["targets"]) == {"localhost", "localhost-batch"}
    assert record["result"]["targets"]["localhost"]["stdout"] == (
        printed["targets"]["localhost"]["stdout"])

    published = runner_on(demo_repo, "publish", "--once", env=env)
    assert published.returncode == 0, published.stderr
    base = f"runs/{datetime.now(UTC):%Y/%m/%d}/health-check/{run_id}"
    on_branch = json.loads(git(demo_repo, "show", f"reports:{base}/result.json"))
    assert (on_branch["run_id"], on_branch["trigger"]) == (run_id, "cli")
    src = printed["targets"]["localhost"]["downloads"][0]["src"]
    name = src.lstrip("/").replace("/", "_")
    assert git(demo_repo, "show", f"reports:{base}/localhost/downloads/{name}") == (
        (demo_repo / "files" / "motd.txt").read_text().strip())
    assert f"Run-Id: {run_id}" in git(demo_repo, "log", "reports", "-1", "--format=%B")
    assert "Trigger: cli" in git(demo_repo, "log", "reports", "-1", "--format=%B")
    if where == "embedded":  # the store let it go, and the publisher's git dir is elsewhere:
        store = FileStore(demo_repo / ".runner" / "state")  # history reads the local branch
        store.forget(time.time() + 1)
        assert store.run(run_id) is None
        status = read_publisher(store)
        assert status is not None
        write_publisher(store, replace(status, git_dir=str(demo_repo / "gone.git")))
        shown = runner_on(demo_repo, "history", run_id, "--format", "json", env=env)
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["runs"][0]["run_id"] == run_id


def test_a_dry_run_records_nothing(demo_repo: Path) -> None:
    done = runner_on(demo_repo, "run", "health-check", "--dry-run", env=NO_REDIS)
    assert done.returncode == 0, done.stderr
    shown = runner_on(demo_repo, "history", "--format", "json", env=NO_REDIS)
    assert json.loads(shown.stdout)["runs"] == []


@pytest.mark.parametrize(("job", "code"), [("health-check", 0), ("fails", 1)])
def test_an_unreachable_store_warns_and_the_run_still_runs(tmp_path: Path, job: str,
                                                           code: int) -> None:
    repo = copy_demo(tmp_path / "config")
    add_job(repo, "jobs:\n  fails:\n    queue: system\n    targets: [localhost]\n"
                  "    steps: [{command: 'exit 4'}]\n")
    done = runner_on(repo, "run", job, "--format", "json",
                     env={"REDIS_URL": "redis://127.0.0.1:1/0"})
    assert done.returncode == code, done.stderr
    run_id = json.loads(done.stdout)["run_id"]
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: run {run_id} is not recorded: cannot reach Redis at "
                        "REDIS_URL='redis://127.0.0.1:1/0': Error 111 connecting to "
                        "127.0.0.1:1. Connection refused.; start it, or unset REDIS_URL for "
                        "the embedded default"]
    assert "Traceback" not in done.stderr


def test_runner_cancel_stops_a_direct_run(demo_repo: Path) -> None:
    add_job(demo_repo, "jobs:\n  long:\n    queue: system\n    targets: [localhost]\n"
                       "    steps: [{command: 'sleep 46.1'}]\n")
    proc = subprocess.Popen([sys.executable, "-m", "runner", "run", "long", "--repo",
                             str(demo_repo), "--format", "json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **NO_REDIS})
    poll(lambda: matching(proc.pid, "sleep 46.1"), 20, "the job never started")
    runs = json.loads(runner_on(demo_repo, "history", "long", "--format", "json",
                                env=NO_REDIS).stdout)["runs"]
    assert runs[0]["state"] == "STARTED"
    cancelled = runner_on(demo_repo, "cancel", runs[0]["run_id"], env=NO_REDIS)
    assert cancelled.returncode == 0, cancelled.stderr
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 1, err
    why = f"localhost: cancelled by runner cancel (user {getpass.getuser()}) during step"
    assert json.loads(out)["targets"]["localhost"]["error"].startswith(why)
    record = json.loads(runner_on(demo_repo, "history", runs[0]["run_id"], "--format", "json",
                                  env=NO_REDIS).stdout)["runs"][0]
    assert record["state"] == "REVOKED"
    assert record["result"]["targets"]["localhost"]["error"].startswith(why)


def test_a_killed_direct_run_ends_failed_with_the_reason(demo_repo: Path) -> None:
    """The next worker to start on this machine (its orphan sweep) ends the record of a
    `runner run` killed mid-run, saying so, instead of leaving it STARTED."""
    import socket

    from runner.celery.tasks import sweep_orphans
    from runner.store.files import FileStore

    store = FileStore(demo_repo / ".runner" / "state")
    pid = kill_direct_run(demo_repo, NO_REDIS, store, "46.2")
    assert sweep_orphans(store, socket.gethostname()) == [store.runs("long")[0].run_id]
    record = store.runs("long")[0]
    assert record.state == "FAILURE"
    assert record.error == (f"`runner run` (process {pid}) died during the run (run it "
                            "again with runner retry)")


def test_kill_9_of_a_direct_run_kills_its_command(demo_repo: Path) -> None:
    """`runner run` killed with SIGKILL (its process alone) takes its command with it."""
    import signal

    add_job(demo_repo, "jobs:\n  long:\n    queue: system\n    targets: [localhost]\n"
                       "    steps: [{command: 'sleep 46.4'}]\n")
    proc = subprocess.Popen([sys.executable, "-m", "runner", "run", "long", "--repo",
                             str(demo_repo)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, **NO_REDIS})

    [sleep] = poll(lambda: running(proc.pid, "sleep 46.4"), 30, "the job's sleep runs")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    poll(lambda: not alive(sleep), 10, "the killed run's command dies")


def test_on_redis_the_sweep_ends_a_killed_direct_run_but_leaves_workers_runs(
        demo_repo: Path, redis_server: Redis) -> None:
    """On Redis a dead worker's run comes back to another worker (its message), so only a
    direct run, which has no message, is ended by the sweep at a worker's start."""
    import socket

    from runner.celery.tasks import sweep_orphans
    from runner.store.redis import RedisStore

    env = isolated(redis_server)
    store = RedisStore(env["REDIS_URL"])
    host = socket.gethostname()
    untouched = "01a000000000-00000001"
    store.save_run(RunRecord.from_json(
        {"run_id": untouched, "job": "long", "state": "STARTED",
         "created": 1.0, "worker": f"w-999999@{host}", "trigger": "schedule s"}))
    kill_direct_run(demo_repo, env, store, "46.3")
    direct = next(r.run_id for r in store.runs("long") if r.worker.startswith("cli-"))
    assert sweep_orphans(store, host, cli_only=True) == [direct]
    assert (store.run(direct) or RunRecord(direct)).state == "FAILURE"
    assert (store.run(untouched) or RunRecord(untouched)).state == "STARTED"


def kill_direct_run(repo: Path, env: dict[str, str], store: Any, seconds: str) -> int:
    """Starts `runner run long` (a `sleep SECONDS`), waits until the store has its record,
    kills it with its commands (kill -9) and returns its pid."""
    import signal

    add_job(repo, "jobs:\n  long:\n    queue: system\n    targets: [localhost]\n"
                  f"    steps: [{{command: 'sleep {seconds}'}}]\n")
    proc = subprocess.Popen([sys.executable, "-m", "runner", "run", "long", "--repo",
                             str(repo)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **env}, start_new_session=True)
    deadline = time.monotonic() + 20
    while not [r for r in store.runs("long") if str(r.worker).startswith("cli-")]:
        assert time.monotonic() < deadline, "the run was never recorded"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    return proc.pid
