"""The service layer (runner.ops) on real stores: a FileStore in tmp_path and Redis."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.celery.app import create_app
from runner.errors import UsageError
from runner.ops import runs, status, suspend
from runner.ops.reconcile import Reconciler
from runner.runs import RunRecord
from runner.settings import Settings
from runner.store import Store
from runner.system import System

THREADS, EACH = 8, 15



def at_once(work: Callable[[int], None]) -> None:
    """work(0..THREADS-1), each in its own thread, all released together."""
    start = threading.Barrier(THREADS)
    failed: list[BaseException] = []

    def one(i: int) -> None:
        start.wait()
        try:
            work(i)
        except BaseException as e:  # reported below
            failed.append(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failed


def test_concurrent_suspends_and_resumes_lose_none(store: Store) -> None:
    names = [[f"s{i}-{n}" for n in range(EACH)] for i in range(THREADS)]
    at_once(lambda i: [suspend.suspend(store, f"user{i}", name) for name in names[i]])
    paused = store.get("suspended") or {}
    assert sorted(paused["schedules"]) == sorted(n for ns in names for n in ns)
    assert paused["schedules"]["s3-4"]["by"] == "user3"
    # every thread resumes half of its own and suspends all: none of either is lost
    at_once(lambda i: [suspend.resume(store, name) for name in names[i][::2]])
    at_once(lambda i: suspend.suspend(store, f"user{i}") and None)
    paused = store.get("suspended") or {}
    assert sorted(paused["schedules"]) == sorted(n for ns in names for n in ns[1::2])
    assert paused["all"]["by"].startswith("user")
    assert suspend.resume(store).entry == {"schedules": {}}


def test_suspend_names_a_schedule_of_the_configuration(demo_repo: Path) -> None:
    system = System(Settings(), demo_repo, demo_repo / ".runner")
    config = system.config()
    with pytest.raises(UsageError, match=r"there is no schedule 'nightly-bakup'"):
        suspend.suspend(system.store, "me", "nightly-bakup", config)
    assert system.store.get("suspended") is None
    name = next(iter(config.schedules))
    entry = suspend.suspend(system.store, "me", name, config).entry
    assert list(entry) == ["schedules"] and entry["schedules"][name]["by"] == "me"
    assert status.status(system).suspended == entry


def test_enqueue_cancel_retry_and_history(demo_repo: Path) -> None:
    system = System(Settings(), demo_repo, demo_repo / ".runner")
    config = system.config()
    app = create_app(system, config)
    load = lambda: (app, config)  # noqa: E731
    store = system.store
    job = next(iter(config.jobs))
    with pytest.raises(runs.JobNotFound) as missing:
        runs.enqueue(app, store, config, "no-such-job", "test")
    assert missing.value.revision == config.revision
    queued = runs.enqueue(app, store, config, job, "test", action={"action": "run"})
    record = store.run(queued.run_id) or RunRecord(queued.run_id)
    assert record.actions == ({"action": "run"},)
    with pytest.raises(runs.RunNotFound, match="there is no run 'nope'"):
        runs.cancel(load, store, "nope", "me")
    done = runs.cancel(load, store, queued.run_id, "me", {"action": "cancel"})
    assert done.state == "REVOKED" and done.record.state == "REVOKED"
    record = store.run(queued.run_id) or RunRecord(queued.run_id)
    assert record.actions == ({"action": "run"}, {"action": "cancel"})
    with pytest.raises(runs.RunNotActive, match="is already REVOKED; nothing to cancel"):
        runs.cancel(load, store, queued.run_id, "me", {"action": "cancel"})
    record = store.run(queued.run_id) or RunRecord(queued.run_id)
    assert len(record.actions or ()) == 2  # a refused cancel: none
    again = runs.retry(load, store, queued.run_id)
    assert (again.job, again.retry_of) == (job, queued.run_id)
    record = store.run(again.run_id) or RunRecord(again.run_id)
    assert record.trigger == f"retry-of {queued.run_id}"
    with pytest.raises(runs.RunNotFound):
        runs.retry(load, store, "nope")
    assert [r.run_id for r in runs.history(system, job, 10, "reports").runs] == [
        again.run_id, queued.run_id]
    assert runs.history(system, queued.run_id, 10, "reports").runs[0].state == "REVOKED"
    with pytest.raises(UsageError, match="in the store or on reports"):
        runs.history(system, queued.run_id[:-4] + "ffff", 10, "reports")


def test_reconciler_tells_an_unchanged_outcome_once_when_watching(demo_repo: Path) -> None:
    system = System(Settings(), demo_repo, demo_repo / ".runner")
    told: list[tuple[str | None, bool]] = []
    reconciler = Reconciler(system, str(demo_repo), "main", None,
                            lambda o: told.append((o.revision, o.changed)))
    assert reconciler.once(watching=True) == 0
    assert reconciler.once(watching=True) == 0
    assert told == [(told[0][0], True)]  # the second, unchanged, is not told again
    assert status.status(system).revisions["applied_revision"] == told[0][0]
    assert reconciler.once() == 0  # once (not watching): always told
    assert told[1:] == [(told[0][0], False)]
    missing = Reconciler(system, str(demo_repo), "no-such-branch", None, told.append)
    assert missing.once(watching=True) == 2
