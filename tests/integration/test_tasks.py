"""The task body (runner.celery.tasks.execute) in this process, with a real command and the embedded
store: what a soft time limit leaves behind."""

from __future__ import annotations

import os
import random
import signal
import time
import warnings
from pathlib import Path
from types import FrameType

import pytest
from celery.exceptions import DuplicateTaskNameWarning, SoftTimeLimitExceeded

from runner.celery.app import create_app
from runner.celery.message import TASK
from runner.celery.tasks import _Process, execute
from runner.runs import RunRecord, new_run_id
from runner.settings import Settings
from runner.store import keys
from runner.system import System
from tests.helpers.procs import alive, watching
from tests.helpers.repos import small_repo


def _system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: str) -> System:
    """The embedded system of a repository with one local target, queue q and `jobs`."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("RUNNER_CACHE_DIR", str(tmp_path / "cache"))
    repo = small_repo(tmp_path / "repo", jobs)
    return System(Settings(), repo, repo / ".runner")


def test_a_soft_time_limit_kills_the_command_and_records_the_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = f"{random.randint(100, 999)}.{random.randint(1000, 9999)}"  # this test's sleep
    system = _system(tmp_path, monkeypatch,
        f"jobs:\n  long: {{queue: q, targets: [here], steps: [{{command: sleep {marker}}}]}}\n")
    run_id = new_run_id()
    system.store.save_run(RunRecord.from_json({"run_id": run_id, "job": "long", "state": "PENDING",
                           "created": time.time(), "trigger": "cli", "queue": "q"}))

    def soft_limit(_signum: int, _frame: FrameType | None) -> None:
        raise SoftTimeLimitExceeded()  # what billiard raises in the pool process

    previous = signal.signal(signal.SIGALRM, soft_limit)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    try:
        with watching(os.getpid(), f"sleep {marker}") as sleeps:  # the command: our child
            state, error = execute(system, _Process(), "long", system.config().revision, run_id,
                                   None, "w-1@here", False)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert state == "FAILURE" and error and "passed its time limit" in error
    record = system.store.run(run_id) or RunRecord(run_id)
    assert record.state == "FAILURE" and "passed its time limit" in record.error
    assert sleeps
    assert not [p for p in sleeps if alive(p)]  # the command was killed, not left running


@pytest.mark.parametrize("begun", ["STARTED", "WAITING"])
def test_a_second_delivery_of_a_started_run_runs_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, begun: str) -> None:
    """Redelivered (visibility timeout) or sent again: the first delivery runs it (or waits
    for its slots), or ran it until it died (then it is buried): the command never runs a
    second time meanwhile."""
    ran = tmp_path / "ran"
    system = _system(tmp_path, monkeypatch,
        f"jobs:\n  once: {{queue: q, targets: [here], steps: [{{command: touch {ran}}}]}}\n")
    run_id = new_run_id()
    system.store.save_run(RunRecord.from_json({"run_id": run_id, "job": "once", "state": begun,
                           "created": time.time(), "worker": "w-1@there", "deliveries": 1}))
    state, error = execute(system, _Process(), "once", system.config().revision, run_id,
                           None, "w-2@here", True)
    assert (state, error) == (begun, f"run {run_id} had already {begun}")
    assert not ran.exists()
    record = system.store.run(run_id) or RunRecord(run_id)
    assert (record.state, record.worker, record.deliveries) == (begun, "w-1@there", 1)


@pytest.mark.parametrize(("attempts", "attempt", "retried"), [(0, 1, False), (2, 1, True),
                                                              (2, 2, True), (2, 3, False)])
def test_bury_ends_a_dead_run_and_queues_a_retry_while_attempts_remain(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, attempts: int, attempt: int,
        retried: bool) -> None:
    from runner.celery.app import create_app
    from runner.celery.tasks import bury

    system = _system(tmp_path, monkeypatch,
        f"jobs:\n  j: {{queue: q, targets: [here], retries: {{attempts: {attempts}}}, "
        "steps: [{command: 'true'}]}\n")
    config = system.config()
    system.store.save_run(RunRecord.from_json(
        {"run_id": "r1", "job": "j", "state": "STARTED", "created": 1.0,
         "attempt": attempt, "schedule": "s", "scheduled_for": "T"}))
    app = create_app(system, config)
    retry = bury(app, system.store, config, "r1", "worker w@h died during the run")
    record = system.store.run("r1") or RunRecord("r1")
    assert (record.state, record.error) == ("FAILURE", "worker w@h died during the run")
    assert (retry is not None) is retried
    if retry is not None:
        again = system.store.run(retry) or RunRecord(retry)
        assert (again.state, again.retry_of, again.attempt, again.trigger,
                again.schedule) == ("PENDING", "r1", attempt + 1, "retry-of r1", "s")
    live = {keys.output("r1"): {"targets": ["here"]}, keys.output("r1", "here"): {"step": "s"}}
    system.store.put_many(live)  # its worker died between its final write and their delete
    assert bury(app, system.store, config, "r1", "again") is None  # ended: never twice
    assert [system.store.get(k) for k in live] == [None, None]
    assert (system.store.run("r1") or RunRecord("r1")).error == "worker w@h died during the run"


def test_a_store_away_when_the_run_starts_is_waited_for_not_a_lost_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from runner.errors import StoreUnavailable
    from runner.store.files import FileStore

    monkeypatch.setattr("runner.store.outage.Outage.lost", lambda self, e: 0.01)  # quick backoff
    system = _system(tmp_path, monkeypatch,
        "jobs:\n  j: {queue: q, targets: [here], steps: [{command: echo done}]}\n")
    revision = system.config().revision
    system.store.save_run(RunRecord.from_json(
        {"run_id": "r1", "job": "j", "state": "RECEIVED", "created": 1.0}))
    failures = [StoreUnavailable("Redis is away")] * 3
    real = FileStore.begin_run

    def flaky(self: FileStore, *args: object) -> object:
        if failures:
            raise failures.pop()
        return real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(FileStore, "begin_run", flaky)
    state, _ = execute(system, _Process(), "j", revision, "r1", None, "w-1@here", False)
    assert (state, failures) == ("SUCCESS", [])
    assert "done" in str((system.store.run("r1") or RunRecord("r1")).result)


def test_the_directory_is_parsed_again_only_when_a_file_changed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import runner.config.load as config_load
    import runner.system as system_module

    system = _system(tmp_path, monkeypatch,
                     "jobs:\n  j: {queue: q, targets: [here], steps: [{command: 'true'}]}\n")
    loads = [0]
    real = config_load.load

    def counted(*args: object, **kwargs: object) -> object:
        loads[0] += 1
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(config_load, "load", counted)
    monkeypatch.setattr(system_module, "DIR_RELOAD", 0.0)  # look every time
    monkeypatch.setattr(system_module, "RELOAD", 0.0)
    first = system.config()
    assert system.config() is first and system.config() is first
    assert loads[0] == 1  # unchanged files: a stat each, no parse
    (system.repo / "jobs.d" / "j.yaml").write_text(
        "jobs:\n  k: {queue: q, targets: [here], steps: [{command: 'true'}]}\n")  # same size
    assert set(system.config().jobs) == {"k"} and loads[0] == 2
    (system.repo / "jobs.d" / "more.yaml").write_text(
        "jobs:\n  m: {queue: q, targets: [here], steps: [{command: 'true'}]}\n")
    assert set(system.config().jobs) == {"k", "m"} and loads[0] == 3


def test_two_apps_in_one_process_each_run_jobs_with_their_own_system(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """create_app twice (the API's Control, a test, a CLI command in one process): no
    DuplicateTaskNameWarning, and each app's run_job records into its own system's store."""
    systems = [_system(tmp_path / name, monkeypatch,
                       f"jobs:\n  j: {{queue: q, targets: [here], steps: "
                       f"[{{command: touch {tmp_path / name / 'ran'}}}]}}\n")
               for name in ("a", "b")]
    with warnings.catch_warnings():
        warnings.simplefilter("error", DuplicateTaskNameWarning)  # raised as apps finalize
        apps = [create_app(s) for s in systems]
        tasks = [app.tasks[TASK] for app in apps]
    assert tasks[0] is not tasks[1]
    for system, task, name, other in zip(systems, tasks, "ab", "ba", strict=True):
        run_id = new_run_id()
        system.store.save_run(RunRecord.from_json({
            "run_id": run_id, "job": "j", "state": "PENDING", "created": time.time(),
            "trigger": "cli", "queue": "q"}))
        task.apply(kwargs={"job": "j", "revision": system.config().revision,
                           "run_id": run_id}).get()
        assert (system.store.run(run_id) or RunRecord(run_id)).state == "SUCCESS"
        assert (tmp_path / name / "ran").exists() and not (tmp_path / other / "ran").exists()
        (tmp_path / name / "ran").unlink()
