"""The report branch for real: runs through the local transport, git repositories with bare
remotes, a publisher killed mid-batch, two publishers pushing to one remote, `runner up`."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from runner.celery.tasks import _Process, execute
from runner.cli import cli
from runner.errors import ReportError
from runner.publish import Publisher, read_run, serve
from runner.runs import RunRecord, new_run_id
from runner.settings import Settings
from runner.store import Store
from runner.store.files import FileStore
from runner.store.redis import RedisStore
from runner.system import System
from tests.helpers.procs import poll
from tests.helpers.repos import git
from tests.servers import Redis, runner_up

Commit = Callable[[dict[str, str | None], str], str]
DAY = 86400.0


def fake(store: Store, job: str = "health-check", when: float | None = None,
         state: str = "SUCCESS", **extra: Any) -> str:
    """A finished run record, as a worker would have saved it."""
    when = time.time() if when is None else when
    run_id = new_run_id(when)
    store.save_run(RunRecord.from_json(
        {"run_id": run_id, "job": job, "state": state, "created": when,
         "started": when, "finished": when + 0.5, "trigger": "cli",
         "revision": "a" * 40, "result": {"status": "success", "targets": {
             "localhost": {"status": "success", "rc": 0, "stdout": f"{run_id}\n",
                           "stderr": "", "duration": 0.5, "error": None}}},
         **extra}))
    return run_id


def trailers(repo: Path, key: str, ref: str = "reports") -> list[str]:
    out = git(repo, "log", ref, f"--format=%(trailers:key={key},valueonly,separator=)")
    return [line for line in out.splitlines() if line]


def run_dirs(repo: Path, ref: str = "reports") -> list[str]:
    """Run ids of the tip tree, from its result.json files."""
    files = git(repo, "ls-tree", "-r", "--name-only", ref, "--", "runs").splitlines()
    return [f.split("/")[5] for f in files if f.endswith("/result.json")]


@pytest.fixture(params=["files", "redis"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "files":
        yield FileStore(tmp_path / "state")
        return
    server: Redis = request.getfixturevalue("redis_server")
    store = RedisStore(server.url, prefix=f"t{secrets.token_hex(4)}:")
    yield store


def test_finished_runs_and_only_they_reach_the_feed(any_store: Store) -> None:
    store = any_store
    run_id = new_run_id()
    store.save_run(RunRecord.from_json(
        {"run_id": run_id, "job": "j", "state": "PENDING", "created": 1.0}))
    store.update_run(run_id, {"state": "STARTED"})
    assert store.to_publish(10) == []
    late = fake(store, when=100.0)
    store.update_run(run_id, {"state": "FAILURE", "finished": 50.0})
    skipped = fake(store, state="SKIPPED", when=200.0)
    assert store.to_publish(10) == [run_id, late, skipped]  # by finish time
    assert store.to_publish(2) == [run_id, late]
    store.published([run_id, skipped])
    assert store.to_publish(10) == [late]


def test_real_runs_land_on_the_branch_masked_and_queryable(
        demo_repo: Path, commit: Commit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = f"s3cr3t-{secrets.token_hex(8)}"
    monkeypatch.setenv("RUNNER_SECRET_SOME_VAR", secret)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("RUNNER_CACHE_DIR", str(tmp_path / "cache"))
    drop = tmp_path / "drop"
    drop.mkdir()
    revision = commit({"jobs.d/audit.yaml": f"""\
jobs:
  leaky:
    queue: system
    targets: [localhost]
    env: {{TOKEN: env:RUNNER_SECRET_SOME_VAR}}
    steps:
      - {{command: 'echo "token=$TOKEN"; echo "err $TOKEN" >&2;
                    printf "%s\\n" "$TOKEN" > {drop}/s.txt'}}
      - {{download: {{src: {drop}/s.txt}}}}
  broken:
    queue: system
    targets: [localhost, localhost-batch]
    steps: [{{name: fail, command: 'echo bad; exit 3'}}]
"""}, "jobs that leak and fail")
    system = System(Settings(), demo_repo, demo_repo / ".runner")
    ids = {}
    for job in ("leaky", "broken"):
        ids[job] = new_run_id()
        system.store.save_run(RunRecord.from_json(
            {"run_id": ids[job], "job": job, "state": "PENDING",
             "created": time.time(), "trigger": "cli", "queue": "system"}))
        execute(system, _Process(), job, revision, ids[job], None, "test-worker", False)
    skipped = fake(system.store, job="leaky", state="SKIPPED", result=None,
                   error="previous run of schedule s is still STARTED (overlap: forbid)")
    done = CliRunner().invoke(cli, ["publish", "--once", "--repo", str(demo_repo)])
    assert done.exit_code == 0, done.output
    assert system.store.to_publish(10) == []

    subjects = git(demo_repo, "log", "reports", "--format=%s").splitlines()
    assert subjects == [f"leaky SKIPPED on 0 targets (run {skipped})",
                        f"broken FAILURE on 2 targets (run {ids['broken']})",
                        f"leaky SUCCESS on 1 target (run {ids['leaky']})"]
    assert trailers(demo_repo, "Status") == ["SKIPPED", "FAILURE", "SUCCESS"]
    assert trailers(demo_repo, "Config-Revision")[1:] == [revision, revision]
    assert trailers(demo_repo, "Trigger") == ["cli"] * 3
    # the README's audit queries
    by_path = git(demo_repo, "log", "reports", "--format=%h", "--", "runs/*/*/*/leaky/*")
    assert len(by_path.splitlines()) == 2
    grep = git(demo_repo, "log", "reports", "--format=%s", "--grep=^Status: FAILURE")
    assert grep.splitlines() == [subjects[1]]
    day = datetime.now(UTC).strftime("%Y/%m/%d")
    base = f"runs/{day}/leaky/{ids['leaky']}"
    assert git(demo_repo, "show", f"reports:{base}/localhost/stdout") == "token=********"
    assert git(demo_repo, "show", f"reports:{base}/localhost/stderr") == "err ********"
    downloaded = f"reports:{base}/localhost/downloads/{str(drop).lstrip('/').replace('/', '_')}"
    assert git(demo_repo, "show", f"{downloaded}_s.txt") == "********"
    latest = json.loads(git(demo_repo, "show", "reports:latest/leaky.json"))
    assert latest["run_id"] == skipped
    result = json.loads(git(demo_repo, "show", f"reports:{base}/result.json"))
    assert result["result"]["targets"]["localhost"]["status"] == "success"
    # no byte of the secret in any object of the repository
    objects = subprocess.run(["git", "-C", str(demo_repo), "cat-file", "--batch-all-objects",
                              "--batch"], capture_output=True, check=True).stdout
    (tmp_path / "objects.bin").write_bytes(objects)
    assert b"s3cr3t-" not in objects and b"********" in objects
    # the store forgets the run: history reads it from the branch
    (demo_repo / ".runner" / "state" / "runs" / f"{ids['broken']}.json").unlink()
    shown = CliRunner().invoke(cli, ["history", ids["broken"], "--repo", str(demo_repo),
                                     "--format", "json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["runs"][0]["result"]["targets"]["localhost"]["rc"] == 3
    # and the worktree and index were never touched
    assert git(demo_repo, "status", "--porcelain") == "?? .runner/"


def test_a_publisher_killed_mid_batch_loses_nothing_and_commits_nothing_twice(
        demo_repo: Path) -> None:
    store = FileStore(demo_repo / ".runner" / "state")
    start = time.time() - 3000
    ids = [fake(store, job=f"job-{i % 7}", when=start + i) for i in range(1500)]
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    argv = [sys.executable, "-m", "runner", "publish", "--once", "--batch", "50", "--repo",
            str(demo_repo)]
    first = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    # a first batch committed and taken off the queue (the ref alone may move just before)
    poll(lambda: len(store.to_publish(10_000)) < len(ids) or first.poll() is not None, 60,
         "a first batch is committed")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    left = len(store.to_publish(10_000))
    assert 0 < left < len(ids), "killed while it was publishing"
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert store.to_publish(10) == []
    committed = trailers(demo_repo, "Run-Id")
    assert len(committed) == len(set(committed)) == len(ids)
    assert committed[::-1] == ids  # in the order they finished
    assert sorted(run_dirs(demo_repo)) == sorted(ids)
    # published again (a feed entry left behind): skipped, not committed twice
    store.save_run(store.run(ids[5]) or RunRecord(ids[5]))
    again = Publisher(demo_repo / ".git").publish(store)
    assert (again.committed, again.present) == ([], [ids[5]])


def clone(remote: Path, where: Path) -> Path:
    git(where.parent, "clone", "-q", str(remote), str(where))
    return where


def test_two_publishers_push_to_one_remote_and_keep_every_run(
        demo_repo: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(demo_repo), str(remote))
    sides = [clone(remote, tmp_path / name) for name in ("a", "b")]
    stores = [FileStore(side / ".runner" / "state") for side in sides]
    pubs = [Publisher(side / ".git", "reports", "origin") for side in sides]
    ids: list[str] = []
    for _round in range(4):
        for store in stores:
            ids += [fake(store) for _ in range(15)]
        gate = threading.Barrier(2)
        errors: list[BaseException] = []

        def go(store: Store, pub: Publisher, gate: threading.Barrier = gate,
               errors: list[BaseException] = errors) -> None:
            gate.wait()
            try:
                serve(store, pub, threading.Event(), batch=4, once=True)
            except ReportError as e:
                errors.append(e)

        threads = [threading.Thread(target=go, args=pair) for pair in zip(stores, pubs,
                                                                           strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == []
    on_remote = trailers(remote, "Run-Id")
    assert len(on_remote) == len(set(on_remote)) == len(ids)
    assert sorted(run_dirs(remote)) == sorted(ids)
    assert pubs[0].unpushed() == pubs[1].unpushed() == 0
    assert pubs[0].replays + pubs[1].replays >= 4  # each round, one side had to rebuild
    tips = {git(side, "rev-parse", "reports") for side in sides}
    assert git(remote, "rev-parse", "reports") in tips  # the last to push rebuilt on the other


def test_a_force_pushed_remote_branch_is_built_upon(demo_repo: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(demo_repo), str(remote))
    git(demo_repo, "remote", "add", "origin", str(remote))
    store = FileStore(demo_repo / ".runner" / "state")
    pub = Publisher(demo_repo / ".git", "reports", "origin")
    first = fake(store)
    serve(store, pub, threading.Event(), once=True)
    other = clone(remote, tmp_path / "other")  # someone rewrites the branch: a new root
    git(other, "switch", "-q", "--orphan", "pruned")
    (other / "README").write_text("history pruned\n")
    git(other, "add", "README")
    git(other, "commit", "-qm", "prune the report history")
    git(other, "push", "-q", "--force", "origin", "pruned:reports")
    second = fake(store)
    serve(store, pub, threading.Event(), once=True)
    assert pub.replays == 1
    assert run_dirs(remote) == [second]  # built on their tip; the pruned run stays pruned
    assert git(remote, "show", "reports:README") == "history pruned"
    assert trailers(remote, "Run-Id") == [second]
    assert first in trailers(demo_repo, "Run-Id", "reports@{2}")


def has_ref(repo: Path, ref: str) -> bool:
    return bool(git(repo, "for-each-ref", f"refs/heads/{ref}"))


def test_a_local_checkout_keeps_its_report_branch_local_unless_told_where_to_push(
        demo_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("RUNNER_CACHE_DIR", str(tmp_path / "cache"))
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(demo_repo), str(remote))
    work = clone(remote, tmp_path / "work")  # a fresh clone: its origin is the project
    store = FileStore(work / ".runner" / "state")
    first = fake(store)
    kept = CliRunner().invoke(cli, ["publish", "--once", "--repo", str(work)])
    assert kept.exit_code == 0, kept.output
    assert trailers(work, "Run-Id") == [first]
    assert not has_ref(remote, "reports")  # nothing pushed
    status = CliRunner().invoke(cli, ["status", "--repo", str(work), "--format", "json"])
    assert json.loads(status.output)["reports"]["remote"] is None
    status = CliRunner().invoke(cli, ["status", "--repo", str(work)])
    assert "reports: reports at " in status.output and "kept local (no --push)" in status.output
    assert "unpushed" not in status.output

    bad = CliRunner().invoke(cli, ["publish", "--once", "--repo", str(work), "--push", "orgin"])
    assert bad.exit_code == 2
    assert bad.output == ("error: --push 'orgin' is neither a remote of " f"{work} nor a URL "
                          "or an existing path; pass a remote name (git remote -v lists them) "
                          "or a URL\n")
    second = fake(store)
    pushed = CliRunner().invoke(cli, ["publish", "--once", "--repo", str(work), "--push",
                                      "origin"])
    assert pushed.exit_code == 0, pushed.output
    assert sorted(trailers(remote, "Run-Id")) == sorted([first, second])
    assert git(remote, "rev-parse", "reports") == git(work, "rev-parse", "reports")


def test_an_unreachable_remote_shows_in_status_then_pushes(
        demo_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("RUNNER_CACHE_DIR", str(tmp_path / "cache"))
    remote = tmp_path / "later.git"
    git(demo_repo, "remote", "add", "origin", str(remote))
    store = FileStore(demo_repo / ".runner" / "state")
    fake(store)
    local = CliRunner().invoke(cli, ["publish", "--once", "--repo", str(demo_repo)])
    assert local.exit_code == 0, local.output  # no --push: the unreachable origin is untried
    assert local.output.endswith("; kept local (no --push)\n")
    status = CliRunner().invoke(cli, ["status", "--repo", str(demo_repo)])
    assert "reports: reports at " in status.output and "push failed" not in status.output
    for _ in range(2):
        fake(store)
    failed = CliRunner().invoke(cli, ["publish", "--once", "--repo", str(demo_repo), "--push",
                                      "origin"])
    assert failed.exit_code == 2 and "later.git" in failed.output
    status = CliRunner().invoke(cli, ["status", "--repo", str(demo_repo), "--format", "json"])
    reports = json.loads(status.output)["reports"]
    assert (reports["branch"], reports["unpushed"], reports["remote"]) == ("reports", 3,
                                                                          "origin")
    assert "later.git" in reports["last_error"]
    assert reports["head"] == git(demo_repo, "rev-parse", "reports")
    git(tmp_path, "init", "-q", "--bare", str(remote))
    done = CliRunner().invoke(cli, ["publish", "--once", "--repo", str(demo_repo), "--push",
                                    "origin"])
    assert done.exit_code == 0, done.output
    assert (store.get("reports") or {})["unpushed"] == 0
    assert git(remote, "rev-parse", "reports") == reports["head"]


def test_published_records_past_keep_runs_leave_the_store_not_the_branch(
        demo_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("RUNNER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("RUNNER_KEEP_RUNS", "1h")
    store = FileStore(demo_repo / ".runner" / "state")
    old = [fake(store, when=time.time() - 2 * 3600) for _ in range(3)]
    new = fake(store)
    done = CliRunner().invoke(cli, ["publish", "--once", "--repo", str(demo_repo)])
    assert done.exit_code == 0, done.output
    assert [store.run(i) for i in old] == [None] * 3
    assert store.run(new) is not None
    assert sorted(trailers(demo_repo, "Run-Id")) == sorted([*old, new])
    shown = CliRunner().invoke(cli, ["history", old[0], "--repo", str(demo_repo), "--format",
                                     "json"])
    assert json.loads(shown.output)["runs"][0]["run_id"] == old[0]  # read from the branch


def test_retention_drops_old_days_from_the_tip_not_from_history(demo_repo: Path) -> None:
    store = FileStore(demo_repo / ".runner" / "state")
    now = datetime(2026, 11, 24, 12, tzinfo=UTC).timestamp()
    ids = [fake(store, when=now - i * DAY) for i in range(6)]
    pub = Publisher(demo_repo / ".git", clock=lambda: now)
    pub.write([], keep_days=2)  # no branch yet: nothing to prune
    pub.publish(store, keep_days=2)
    assert sorted(run_dirs(demo_repo)) == sorted(ids[:3])  # 24th, 23rd and 22nd
    assert sorted(trailers(demo_repo, "Run-Id")) == sorted(ids)
    message = git(demo_repo, "log", "-1", "reports", "--format=%s")
    assert message.startswith("reports: retention removes 3 day(s) of runs, through 2026/11/21")
    assert read_run(demo_repo / ".git", "reports", ids[0]) is not None
    assert read_run(demo_repo / ".git", "reports", ids[5]) is None  # only the tip is read


def test_retention_comes_from_queues_yaml(demo_repo: Path, commit: Commit,
                                          tmp_path: Path) -> None:
    from runner.publish import keep_days_of

    queues = (demo_repo / "queues.yaml").read_text() + "reports: {keep_days: 30}\n"
    commit({"queues.yaml": queues}, "keep 30 days of reports")
    system = System(Settings(), demo_repo, demo_repo / ".runner")
    assert keep_days_of(system.config)() == 30


def test_up_commits_each_scheduled_run_to_the_report_branch_and_keeps_it_local(
        demo_repo: Path, commit: Commit, tmp_path: Path) -> None:
    commit({"schedules.d/fast.yaml": "schedules:\n  fast: {job: quick, every: 1s, "
                                     "overlap: allow}\n",
            "jobs.d/quick.yaml": "jobs:\n  quick: {queue: system, targets: [localhost], "
                                 "steps: [{command: echo quick}]}\n",
            "schedules.d/ops.yaml": None},  # the demo's every-minute schedule: not this test's
           "only a fast schedule")
    remote = tmp_path / "remote.git"  # what `make run` sees in a fresh clone: an origin
    git(tmp_path, "clone", "-q", "--bare", str(demo_repo), str(remote))
    git(demo_repo, "remote", "add", "origin", str(remote))
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["RUNNER_CACHE_DIR"] = str(tmp_path / "cache")
    with runner_up(demo_repo, tmp_path / "up.log", env=env):
        poll(lambda: trailers(demo_repo, "Status").count("SUCCESS") >= 3
             if (demo_repo / ".git" / "refs" / "heads" / "reports").exists() else None,
             90, "three scheduled runs committed")
    assert set(trailers(demo_repo, "Trigger")) == {"schedule fast"}
    assert set(trailers(demo_repo, "Job")) == {"quick"}
    head = git(demo_repo, "rev-parse", "main")
    assert set(trailers(demo_repo, "Config-Revision")) == {head}
    runs = run_dirs(demo_repo)
    assert len(runs) == len(trailers(demo_repo, "Run-Id"))
    assert json.loads(git(demo_repo, "show", "reports:latest/quick.json"))["run_id"] in runs
    assert not has_ref(remote, "reports")  # pushed nowhere
    logged = (tmp_path / "up.log").read_text()
    assert "kept local" in logged and "push" not in logged.replace("--push", "")
