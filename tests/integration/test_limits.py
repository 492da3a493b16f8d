"""Cluster-wide limits (issue 22) with real workers, on the embedded default and on Redis:
runs never overlap on a `max_runs: 1` target, a killed worker's slot frees itself, two jobs
needing the same two limits both finish; a run waiting for a slot is WAITING, and cancelled
or reaped as a running one is."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.celery.app import create_app
from runner.celery.reaper import DEAD, Reaper
from runner.celery.tasks import cancel, enqueue
from runner.settings import Settings
from runner.store import Store
from runner.store.entries import read_workers
from runner.system import System
from tests.helpers.api import VIEW, Api, start_api
from tests.helpers.cluster import Cluster, broker_env
from tests.helpers.procs import poll

TARGETS = 5
QUEUES = """\
queues: {q: {}, doomed: {}, w: {}}
workers:
  many: {queues: [q], concurrency: 6}
  victim: {queues: [doomed], concurrency: 1}
  waiter: {queues: [w], concurrency: 1}
limits:
  la: {max: 1, targets: ["label:both=yes"]}
  lb: {max: 1, targets: [both]}
"""


def stamp(path: Path) -> str:
    """A command appending its start and end (nanoseconds) to `path`."""
    return (f"echo s $(date +%s%N) >> {path}; sleep 0.05; echo e $(date +%s%N) >> {path}")


@pytest.fixture(scope="module", params=["embedded", "redis"])
def limited(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[Cluster, System, Path]]:
    """A cluster of the `many` worker (6 at once) on targets t0..t4 (`max_runs: 1`), `both`
    (under limits la and lb) and `k` (`max_runs: 1`), with the jobs the tests run."""
    tmp = tmp_path_factory.mktemp(f"limits-{request.param}")
    env = broker_env(request, tmp)
    repo, out = tmp / "config", tmp / "out"
    out.mkdir()
    for d in ("targets.d", "jobs.d"):
        (repo / d).mkdir(parents=True)
    (repo / "queues.yaml").write_text(QUEUES)
    (repo / "targets.d" / "t.yaml").write_text("targets:\n" + "".join(
        f"  t{i}: {{transport: local, max_runs: 1}}\n" for i in range(TARGETS))
        + "  both: {transport: local, labels: {both: 'yes'}}\n"
        + "  k: {transport: local, max_runs: 1}\n")
    jobs = "jobs:\n"
    for i in range(TARGETS):
        for kind in ("x", "y"):  # two jobs per target: only max_runs keeps them apart
            jobs += f"  {kind}{i}: {{queue: q, targets: [t{i}], steps: [{{command: " \
                    f"'{stamp(out / f't{i}')}'}}]}}\n"
    for kind in ("p", "q"):
        jobs += f"  {kind}: {{queue: q, targets: [both], steps: [{{command: " \
                f"'{stamp(out / 'both')}'}}]}}\n"
    jobs += "  hold: {queue: doomed, targets: [k], steps: [{command: 'sleep 60'}]}\n" \
            "  after: {queue: q, targets: [k], max_active: 1, steps: [{command: 'echo ok'}]}\n" \
            "  stuck: {queue: w, targets: [k], steps: [{command: 'echo ok'}]}\n"
    (repo / "jobs.d" / "j.yaml").write_text(jobs)
    cluster = Cluster(repo, env)
    system = System(Settings(redis_url=env.get("REDIS_URL", "")), repo, repo / ".runner")
    try:
        cluster.worker("many")
        yield cluster, system, out
    finally:
        cluster.stop()


def run_all(cluster: Cluster, system: System, jobs: list[str]) -> None:
    """Queues a run of each of `jobs` at once, and waits for every one to end SUCCESS."""
    config, app = system.config(), create_app(system)
    ids = [enqueue(app, system.store, config, job, "test") for job in jobs]
    for run_id in ids:
        record = cluster.final(run_id, 60)
        assert record.state == "SUCCESS", record


def spans(path: Path) -> list[str]:
    return [line.split()[0] for line in path.read_text().splitlines()]


def test_twenty_runs_never_overlap_on_a_target_of_max_runs_one(
        limited: tuple[Cluster, System, Path]) -> None:
    cluster, system, out = limited
    for i in range(TARGETS):
        (out / f"t{i}").unlink(missing_ok=True)
    run_all(cluster, system, [f"{kind}{i % TARGETS}" for kind in ("x", "y")
                              for i in range(TARGETS * 2)])
    for i in range(TARGETS):  # each start follows the previous end: s e s e ...
        assert spans(out / f"t{i}") == ["s", "e"] * 4, (out / f"t{i}").read_text()
    assert system.store.slots() == {}  # every slot given back


def test_two_jobs_needing_the_same_two_limits_both_finish(
        limited: tuple[Cluster, System, Path]) -> None:
    cluster, system, out = limited
    (out / "both").unlink(missing_ok=True)
    run_all(cluster, system, ["p", "q"] * 3)
    assert spans(out / "both") == ["s", "e"] * 6, (out / "both").read_text()


def test_a_killed_worker_holding_a_slot_frees_it_within_seconds(
        limited: tuple[Cluster, System, Path]) -> None:
    """... and meanwhile (on Redis: the front-ends read the same view on both) `runner
    status`, GET /api/limits and /metrics show who holds the slot and who waits for it."""
    cluster, system, _ = limited
    victim = cluster.worker("victim")
    api = start_api(cluster) if cluster.env.get("REDIS_URL") else None
    try:
        config, app = system.config(), create_app(system)
        hold = enqueue(app, system.store, config, "hold", "test")
        poll(lambda: system.store.slots().get("target k", {}).get("holders"), 30, "k held")
        after = enqueue(app, system.store, config, "after", "test")
        waiting = poll(lambda: (r := system.store.run(after)) and r.waiting, 30, "after waits")
        assert waiting == ("target k",)
        poll(lambda: cluster.state(after) == "WAITING", 10, "after is WAITING")
        cancelled_while_waiting(cluster, system)
        if api:
            shown(cluster, api, hold, after)
        reaped_while_waiting(cluster, system)
    finally:
        if api:
            api.stop()
    os.killpg(victim.pid, signal.SIGKILL)
    killed = time.monotonic()
    record = cluster.final(after, 30)
    assert record.state == "SUCCESS", record
    assert time.monotonic() - killed < 10  # slots.TTL (6 s) and a poll
    assert not record.waiting


def cancelled_while_waiting(cluster: Cluster, system: System) -> None:
    """A second run of `after` (max_active 1) waits for the job's slot; cancelled, it ends
    REVOKED at once and leaves the queue."""
    app = create_app(system)
    second = enqueue(app, system.store, system.config(), "after", "test")
    waiting = poll(lambda: (r := system.store.run(second)) and r.waiting, 30, "second waits")
    assert waiting == ("job after",)
    assert cluster.state(second) == "WAITING"  # written with `waiting`, in one step
    assert [e["id"] for e in system.store.slots()["job after"]["queue"]] == [second]
    cancel(app, system.store, second, "test")
    assert cluster.final(second, 10).state == "REVOKED"
    assert system.store.slots()["job after"]["queue"] == []


def reaped_while_waiting(cluster: Cluster, system: System) -> None:
    """A run WAITING on a worker killed (kill -9) is buried by the reaper, as a STARTED one
    is: FAILURE, its worker died. (The reaper's clock is the test's: the living workers'
    heartbeats change between its two looks, the dead one's does not.)"""
    waiter, app, config = cluster.worker("waiter"), create_app(system), system.config()
    stuck = enqueue(app, system.store, config, "stuck", "test")
    poll(lambda: cluster.state(stuck) == "WAITING", 30, "stuck is WAITING")
    os.killpg(waiter.pid, signal.SIGKILL)
    worker = str(getattr(system.store.run(stuck), "worker", None))
    reaper = Reaper(app, system.store)
    before = read_workers(system.store)
    assert reaper.workers(config, 0.0) == []
    poll(lambda: all(e.heartbeat != before[h].heartbeat for h, e in
                     read_workers(system.store).items() if h != worker), 10,
         "the living workers beat again")
    assert reaper.workers(config, DEAD) == [stuck]
    record = system.store.run(stuck)
    assert record is not None and record.state == "FAILURE", record
    assert str(record.error).startswith(f"worker {worker} died during the run")


def shown(cluster: Cluster, api: Api, hold: str, after: str) -> None:
    """`runner status` (text and JSON), the API and /metrics: `hold` holds target k's slot,
    `after` waits for it."""
    text = cluster.runner("status").stdout
    assert f"limit target k: 1/1 held\n  holds run {hold} on k" in text
    assert f"  waits run {after} on k" in text and "WAITING" in text
    with api.client(VIEW) as client:
        k = client.get("/api/limits").json()["target k"]
        assert (k["max"], [e["run_id"] for e in k["held"]], [e["run_id"] for e in k["waiting"]]) \
            == (1, [hold], [after])
        limits = client.get("/api/limits").json()
        assert limits["limit la"] == {"max": 1, "held": [], "waiting": []}
        run = client.get(f"/api/runs/{after}").json()
        assert (run["state"], run["waiting"]) == ("WAITING", ["target k"])
        page = client.get("/api/runs", params={"state": "WAITING"}).json()
        assert [r["run_id"] for r in page["runs"]] == [after]
        metrics = client.get("/metrics").text
    assert 'runner_runs_active{state="WAITING"} 1' in metrics
    assert 'runner_limit_held{limit="target k"} 1' in metrics
    assert 'runner_limit_waiting{limit="target k"} 1' in metrics


def test_the_store_grants_slots_atomically_in_order_and_lets_leases_lapse(store: Store) -> None:
    """Both backends: 8 threads racing for a 2-slot limit never hold more than 2 at once;
    two holders asking for two limits in opposite order do not deadlock; a lease not renewed
    lapses."""
    held: set[str] = set()
    most = [0]
    guard = threading.Lock()

    def race(i: int) -> None:
        for n in range(5):
            me = f"r{i}-{n}"
            poll(lambda me=me: not store.take_slots([("limit x", 2)], me, "w", 5), 30,
                 f"{me} holds")
            with guard:
                held.add(me)
                most[0] = max(most[0], len(held))
            time.sleep(0.005)  # its work, while it holds the slot
            with guard:
                held.discard(me)
            store.free_slots(["limit x"], me)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert most[0] <= 2 and "limit x" not in store.slots()
    assert store.take_slots([("limit a", 1), ("limit b", 1)], "x", "w", 5) == []
    assert store.take_slots([("limit b", 1), ("limit a", 1)], "y", "w", 0.3) \
        == ["limit b", "limit a"]
    assert [e["id"] for e in store.slots()["limit a"]["queue"]] == ["y"]
    store.free_slots(["limit a", "limit b"], "x")
    assert store.take_slots([("limit b", 1), ("limit a", 1)], "y", "w", 0.3) == []
    poll(lambda: not store.slots(), 5, "y's unrenewed slots lapse")
