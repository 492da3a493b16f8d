"""Directory mode reads a changed repository again at the cost of the files that changed: the
objects of unchanged files are the very same model objects (beat re-plans only what changed),
and the result equals a load from scratch."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.settings import Settings
from runner.system import System

FILES = {
    "queues.yaml": "queues: {q: {}}\nworkers: {w: {queues: [q], concurrency: 1}}\n",
    "targets.d/t.yaml": "targets:\n  here: {transport: local}\n",
    "jobs.d/j.yaml": "jobs:\n  j: {queue: q, targets: [here], steps: [{command: 'true'}]}\n",
    "schedules.d/a.yaml": "schedules:\n  a1: {job: j, cron: '0 2 * * *'}\n"
                          "  a2: {job: j, cron: 'H 3 * * *'}\n",
    "schedules.d/b.yaml": "schedules:\n  b1: {job: j, every: 5m}\n  b2: {job: j, every: 1h}\n",
}


def fresh(repo: Path, tmp_path: Path) -> System:
    system = System(Settings(redis_url=""), repo, tmp_path / "state")
    system.config()
    return system


def test_a_changed_file_costs_its_own_objects(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNER_CACHE_DIR", str(tmp_path / "cache"))
    repo = tmp_path / "repo"
    for name, text in FILES.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    system = fresh(repo, tmp_path)
    before = system.config()
    (repo / "schedules.d/b.yaml").write_text("schedules:\n  b1: {job: j, every: 10m}\n")
    system._read = system._looked = -1e9  # a look at --repo is due
    after = system.config()
    assert after is not before
    assert after.schedules["a1"] is before.schedules["a1"]  # file a unchanged: reused
    assert after.schedules["a2"] is before.schedules["a2"]
    assert after.jobs["j"] is before.jobs["j"] and after.targets is not None
    assert after.schedules["b1"] != before.schedules["b1"]  # rebuilt from the new file
    assert after.schedules["b1"].every == 600
    assert "b2" not in after.schedules and not any(  # removed: forgotten, not kept alive
        "b2" in names for names in system._made.values())
    assert after == fresh(repo, tmp_path / "again").config()  # as a load from scratch


def test_a_file_written_into_the_repository_wakes_its_watcher(tmp_path: Path) -> None:
    import threading
    import time

    repo = tmp_path / "repo"
    for name, text in FILES.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    system = System(Settings(redis_url=""), repo, tmp_path / "state")
    wake = threading.Event()
    stop = system.watch(wake)
    assert stop is not None, "inotify unavailable here"
    try:
        assert not wake.wait(0.3)  # nothing written: no wake-up
        system._read = system._looked = time.monotonic()  # just looked
        tmp = repo / "schedules.d" / "b.yaml.tmp"
        tmp.write_text("schedules:\n  b1: {job: j, every: 10m}\n")
        tmp.replace(repo / "schedules.d" / "b.yaml")  # as an editor or git checkout does
        assert wake.wait(5), "the watcher did not wake"
        assert system._read == float("-inf")  # the next config() looks at once
        assert system.config().schedules["b1"].every == 600
    finally:
        stop()
