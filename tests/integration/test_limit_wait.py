"""Waiting for cluster-wide slots (issue 22) uses neither the job's time nor its permits: a
target waiting for a slot leaves the job's `concurrency` to its other targets, the time limit
of a run that takes slots allows for RUNNER_LIMIT_WAIT_MAX of waiting besides its work, and a
wait past it fails with a sentence. On the embedded store, with the real Gate, Engine and task
code (no worker process: the slots in the way are held by the test)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from runner.celery.app import create_app
from runner.celery.limits import Gate
from runner.celery.message import time_limit
from runner.celery.tasks import _Process, enqueue, execute
from runner.executor.base import TargetResult
from runner.executor.cancel import Cancel
from runner.executor.engine import Engine
from runner.settings import Settings
from runner.system import System

CONFIG = {
    "queues.yaml": "queues: {q: {}}\nworkers: {w: {queues: [q]}}\n",
    "targets.d/t.yaml": "targets:\n  a: {transport: local, max_runs: 1}\n"
                        "  b: {transport: local}\n",
    "jobs.d/j.yaml": "jobs:\n"
                     "  both: {queue: q, targets: [a, b], concurrency: 1, timeout: 1h, "
                     "steps: [{command: 'echo ok'}]}\n"
                     "  once: {queue: q, targets: [b], max_active: 1, timeout: 1h, "
                     "steps: [{command: 'echo ok'}]}\n"
                     "  free: {queue: q, targets: [b], timeout: 1h, "
                     "steps: [{command: 'echo ok'}]}\n",
}


def system_at(tmp_path: Path, settings: Settings) -> System:
    repo = tmp_path / "config"
    for name, text in CONFIG.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    return System(settings, repo, repo / ".runner")


def run_both(system: System, gate: Gate, release: bool = True
             ) -> tuple[dict[str, TargetResult], dict[str, float]]:
    """Runs job `both` (a, then b; one at a time) through `gate`, while `other` holds target
    a's slot (until b has ended, with `release`): the results, and when each target ended."""
    config = system.config()
    job, ended = config.jobs["both"], {}

    def progress(name: str, result: TargetResult | None) -> None:
        if result is not None:
            ended[name] = time.monotonic()

    async def main() -> dict[str, TargetResult]:
        engine = Engine(system.settings, state_dir=system.state_dir)
        run = asyncio.create_task(engine.run(
            job, {t: config.targets[t] for t in ("a", "b")}, system.files(job, config),
            run_id=gate.run_id, revision=config.revision, progress=progress,
            gate=gate.target))
        deadline = time.monotonic() + 10
        while "b" not in ended and not run.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if release:
            system.store.free_slots(["target a"], "other")
        results = (await asyncio.wait_for(run, 10)).targets
        await engine.close()
        return results

    return asyncio.run(main()), ended


def test_a_target_waiting_for_its_slot_leaves_the_permit_to_the_run_s_other_targets(
        tmp_path: Path) -> None:
    system = system_at(tmp_path, Settings())
    assert system.store.take_slots([("target a", 1)], "other", "w", 60) == []
    gate = Gate(system.store, "r1", "w", {"": [], "a": [("target a", 1)], "b": []}, Cancel())
    results, ended = run_both(system, gate)
    assert {n: r.status for n, r in results.items()} == {"a": "success", "b": "success"}
    assert ended["b"] < ended["a"]  # b ran while a waited, with concurrency 1


def test_a_target_that_waits_past_runner_limit_wait_max_fails_and_its_run_goes_on(
        tmp_path: Path) -> None:
    system = system_at(tmp_path, Settings(limit_wait_max=1))
    assert system.store.take_slots([("target a", 1)], "other", "w", 60) == []
    gate = Gate(system.store, "r2", "w", {"": [], "a": [("target a", 1)], "b": []}, Cancel(),
                wait_max=1)
    results, _ = run_both(system, gate, release=False)
    assert results["b"].status == "success"
    assert (results["a"].status, results["a"].error) == (
        "failed", "a: not run, it waited more than 1s for target a (RUNNER_LIMIT_WAIT_MAX)")
    assert system.store.slots().get("target a", {}).get("queue", []) == []  # left the queue


def test_a_run_that_takes_slots_gets_the_wait_on_top_of_its_time_limit(tmp_path: Path) -> None:
    system = system_at(tmp_path, Settings())
    config, app = system.config(), create_app(system)
    ids = {name: enqueue(app, system.store, config, name, "test") for name in ("once", "free")}
    messages = [json.loads(p.read_text()) for p in (system.broker_dir / "queue").glob("*.msg")]
    limits = {m["headers"]["id"]: m["headers"]["timelimit"] for m in messages}
    work = time_limit(config.jobs["free"], 1)
    assert work == 3660
    assert limits[ids["free"]] == [work, work - 30]
    assert limits[ids["once"]] == [work + 86400, work + 86400 - 30]


def test_a_run_that_waits_past_runner_limit_wait_max_for_its_job_slot_ends_failure(
        tmp_path: Path) -> None:
    system = system_at(tmp_path, Settings(limit_wait_max=1))
    config = system.config()
    assert system.store.take_slots([("job once", 1)], "other", "w", 60) == []
    run_id = enqueue(create_app(system), system.store, config, "once", "test")
    why = f"run {run_id} waited more than 1s for job once (RUNNER_LIMIT_WAIT_MAX) and was not run"
    state = execute(system, _Process(), "once", config.revision, run_id, None, "w@h", False)
    assert state == ("FAILURE", why)
    record = system.store.run(run_id)
    assert record is not None and (record.state, record.error) == ("FAILURE", why)
    assert [e["id"] for e in system.store.slots()["job once"]["queue"]] == []

