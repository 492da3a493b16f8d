"""The reaper in the active `runner beat`, on a real Redis with real workers: a worker killed
mid-run is buried within seconds and its run retried; a Redis outage buries nobody; a PENDING
run without a message gets one."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from runner.celery.app import create_app
from runner.celery.reaper import PERIOD, Reaper
from runner.celery.tasks import pending
from runner.runs import RunRecord
from runner.settings import Settings
from runner.store import keys
from runner.store.redis import RedisStore
from runner.system import System
from tests.helpers.cluster import Cluster, gated_cluster, make_cluster
from tests.helpers.procs import poll
from tests.servers import Redis, start_redis


def doomed(cluster: Cluster, tmp_path: Path) -> None:
    """`doomed`: the first attempt sleeps long (a unique marker), the retry ends at once."""
    flag = tmp_path / "attempted"
    (cluster.repo / "jobs.d" / "doomed.yaml").write_text(
        "jobs:\n  doomed: {queue: other, targets: [here], retries: {attempts: 1}, steps: "
        f"[{{command: 'if [ -e {flag} ]; then echo again; else touch {flag}; sleep 83.9; "
        "fi'}]}\n")


def test_a_killed_worker_is_buried_and_its_run_retried_once(tmp_path: Path,
                                                            redis_server: Redis) -> None:
    cluster = make_cluster(tmp_path, redis_server.url)
    doomed(cluster, tmp_path)
    try:
        cluster.start("beat")
        first = cluster.worker("side")
        run_id = cluster.enqueue("doomed")
        poll(lambda: cluster.state(run_id) == "STARTED", 30, "the run starts")
        poll(lambda: cluster.store.get(keys.output(run_id)), 30, "its live output (its step)")
        second = cluster.worker("side")
        os.kill(first.pid, signal.SIGKILL)  # the worker's main process: its heartbeat stops
        killed = time.monotonic()
        record = cluster.final(run_id, 60)
        took = time.monotonic() - killed
        print(f"buried {took:.1f}s after the kill")
        assert record.state == "FAILURE"
        assert record.error.startswith(f"worker {record.worker} died during the run "
                                       "(last heartbeat 20")
        assert took < 30
        assert cluster.store.get(keys.output(run_id)) is None  # buried with the run
        retries = poll(lambda: [r for r in cluster.store.runs(limit=50)
                                if r.retry_of == run_id], 30, "a retry is queued")
        assert len(retries) == 1
        retry = cluster.final(retries[0].run_id, 60)
        assert retry.state == "SUCCESS", retry
        assert retry.worker.startswith(f"side-{second.pid}@")
        assert retry.result["targets"]["here"]["stdout"] == "again\n"
        assert retry.attempt == 2
    finally:
        cluster.stop()


def test_a_redis_outage_buries_nobody(tmp_path: Path) -> None:
    """Every heartbeat stops while Redis is away (longer than the reaper's DEAD), and the
    worker is slower than beat to come back (stopped meanwhile): its run goes on."""
    server, port, cluster, go = gated_cluster(tmp_path)
    try:
        beat = cluster.start("beat")
        worker = cluster.worker("side")
        run_id = cluster.enqueue("gated")
        poll(lambda: cluster.state(run_id) == "STARTED", 30, "the run started")
        poll(lambda: cluster.store.holder("beat"), 30, "beat is active")
        key = f"worker:{(cluster.store.run(run_id) or RunRecord(run_id)).worker}"
        beats = set()
        poll(lambda: beats.add((cluster.store.get(key) or {}).get("heartbeat")) or
             len(beats) > 3, 30, "the reaper has watched the worker beat a few times")
        os.kill(worker.pid, signal.SIGSTOP)  # its main process: no heartbeat until SIGCONT
        seen_at = time.monotonic() + 2 * PERIOD + 0.5  # the reaper looks at its last one
        while time.monotonic() < seen_at:  # a timed phase of the fault, like the outage
            time.sleep(0.2)
        server.stop()
        back_at = time.monotonic() + 13.0  # longer than reaper.DEAD
        poll(lambda: b"lost the store" in cluster._log(beat), 30, "beat saw the outage")
        while time.monotonic() < back_at:  # the outage itself: a timed deadline loop
            time.sleep(0.2)
        server = start_redis(tmp_path / "redis", port, persist=True)
        cluster.store = RedisStore(server.url)
        poll(lambda: b"the store is back" in cluster._log(beat), 30, "beat saw Redis back")
        os.kill(worker.pid, signal.SIGCONT)
        watch_until = time.monotonic() + 16.0  # DEAD and more after Redis is back
        while time.monotonic() < watch_until:  # nothing may end it meanwhile
            assert cluster.state(run_id) == "STARTED"
            time.sleep(0.2)
        go.touch()
        record = cluster.final(run_id, 30)
        assert record.state == "SUCCESS", record
        assert worker.poll() is None
    finally:
        go.touch()  # the command ends, whatever happened
        cluster.stop()
        server.stop()


def test_a_pending_run_without_a_message_is_sent_again_once(tmp_path: Path,
                                                            redis_server: Redis) -> None:
    cluster = make_cluster(tmp_path, redis_server.url)
    try:
        system = System(Settings(redis_url=redis_server.url), cluster.repo,
                        cluster.repo / ".runner")
        config = system.config()
        record = pending(config, "side-job", "cli")
        record["created"] -= 120  # its enqueuer died between the record and the message
        system.store.save_run(RunRecord.from_json(record))
        reaper = Reaper(create_app(system), system.store)
        assert reaper.pending(config) == [record["run_id"]]
        assert reaper.pending(config) == []  # once
        cluster.worker("side")
        done = cluster.final(record["run_id"], 60)
        assert done.state == "SUCCESS"
        assert done.note.startswith("message sent again by the reaper")
    finally:
        cluster.stop()
