"""Celery for real: worker and beat subprocesses on Redis and on the embedded default."""

from __future__ import annotations

import getpass
import itertools
import json
import os
import signal
from datetime import datetime

import pytest

from runner.runs import RunRecord
from tests.helpers.cluster import JOBS, QUEUES, Cluster
from tests.helpers.procs import alive, ancestors, matching, poll, running
from tests.servers import free_port


def test_enqueue_wait_routes_to_the_named_worker(cluster: Cluster) -> None:
    cluster.worker("busy")
    cluster.worker("side")
    done = cluster.runner("run", "quick-high", "--enqueue", "--wait", "--format", "json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["state"] == "SUCCESS"
    assert record["worker"].startswith("busy-")
    # every step of its life is recorded, in order: enqueued, taken by the worker, started
    assert record["created"] <= record["received"] <= record["started"] <= record["finished"]
    assert record["deliveries"] == 1
    assert record["targets"]["here"]["stdout"] == "high\n"
    side = cluster.final(cluster.enqueue("side-job"))
    assert (side.state, side.worker.split("-")[0]) == ("SUCCESS", "side")
    history = json.loads(cluster.runner("history", "--format", "json").stdout)["runs"]
    assert [r["job"] for r in history] == ["side-job", "quick-high"]
    failed = cluster.runner("run", "fails", "--enqueue", "--wait")
    assert failed.returncode == 1
    assert "here: step 'command 1' exited with status 3" in failed.stdout
    # the object a direct run prints, plus the record's fields
    direct = json.loads(cluster.runner("run", "quick-high", "--format", "json").stdout)
    assert list(record)[:len(direct)] == list(direct)
    assert set(record["targets"]["here"]) == set(direct["targets"]["here"])
    assert (record["status"], record["trigger"], record["queue"]) == ("success", "cli", "high")


def test_status_shows_workers_and_queues(cluster: Cluster) -> None:
    cluster.worker("side")
    out = json.loads(cluster.runner("status", "--format", "json").stdout)
    assert [w["queues"] for w in out["workers"].values()] == [["other"]]
    assert out["queues"]["high"] == {"length": 0, "priority": 9}
    cluster.enqueue("quick-low")  # nobody serves low yet
    out = json.loads(cluster.runner("status", "--format", "json").stdout)
    assert out["queues"]["low"]["length"] == 1
    assert [r["job"] for r in out["active_runs"]] == ["quick-low"]


def test_cancel_queued_and_running_runs(cluster: Cluster) -> None:
    queued = cluster.enqueue("side-job")
    done = cluster.runner("cancel", queued)
    assert done.returncode == 0, done.stderr
    assert cluster.state(queued) == "REVOKED"
    user = getpass.getuser()
    cancelled = cluster.store.run(queued) or RunRecord(queued)
    assert cancelled.error == f"cancelled by runner cancel (user {user}) before it started"
    assert [(a["action"], a["by"], a["via"]) for a in cancelled.actions or ()] == [
        ("cancel", user, "cli")]
    worker = cluster.worker("side")
    running = cluster.enqueue("slow")
    poll(lambda: cluster.state(running) == "STARTED", 30, "slow run starts")
    # this worker's sleep (other tests running in parallel may have theirs)
    sleeping = poll(lambda: matching(worker.pid, "sleep 47.3"), 10, "sleep runs")
    assert cluster.runner("cancel", running).returncode == 0
    record = cluster.final(running, 15)
    assert record.state == "REVOKED"
    assert record.result["targets"]["here"]["error"] == (
        f"here: cancelled by runner cancel (user {user}) during step 'command 1'")
    poll(lambda: not any(map(alive, sleeping)), 5, "the run's sleep is killed")
    assert cluster.final(queued).state == "REVOKED"
    assert (cluster.store.run(queued) or RunRecord(queued)).started is None  # never started
    again = cluster.runner("cancel", running)
    assert again.returncode == 2 and "already REVOKED" in again.stderr


def test_retry_links_the_new_run(cluster: Cluster) -> None:
    cluster.worker("side")
    first = cluster.final(cluster.enqueue("fails"))
    assert first.state == "FAILURE"
    done = cluster.runner("retry", first.run_id, "--format", "json")
    assert done.returncode == 0, done.stderr
    second = cluster.final(json.loads(done.stdout)["run_id"])
    assert (second.retry_of, second.trigger) == (first.run_id, f"retry-of {first.run_id}")
    assert [(a["action"], a["of"], a["via"]) for a in second.actions or ()] == [
        ("retry", first.run_id, "cli")]


def test_a_worker_takes_the_higher_priority_queue_first(cluster: Cluster) -> None:
    low = [cluster.enqueue("quick-low") for _ in range(3)]
    high = [cluster.enqueue("quick-high") for _ in range(3)]
    cluster.worker("busy")  # concurrency 1, serves low and high, both with a backlog
    records = [cluster.final(r) for r in low + high]
    order = [r.job for r in sorted(records, key=lambda r: r.started)]
    if "REDIS_URL" in cluster.env:
        assert order == ["quick-high"] * 3 + ["quick-low"] * 3
    else:  # embedded: no message priorities; every run still runs, each once
        assert sorted(order) == ["quick-high"] * 3 + ["quick-low"] * 3


def test_kill_9_of_a_pool_process_mid_run_kills_its_command_and_retries_once(
        cluster: Cluster) -> None:
    """The killed pool process's command dies with it and never completes; the run ends
    FAILURE with the reason and its job's one retry runs it once (not the message again)."""
    done = cluster.repo / "done"
    (cluster.repo / "jobs.d" / "m.yaml").write_text(
        "jobs:\n  mortal: {queue: other, targets: [here], retries: {attempts: 1, backoff: 1s},"
        f" steps: [{{command: 'sleep 4.71 && echo once >>{done}'}}]}}\n")
    worker = cluster.worker("side")
    run_id = cluster.enqueue("mortal")

    def command() -> list[tuple[int, int]]:  # (sleep, the pool process it runs under)
        return [(p, up[up.index(worker.pid) - 1]) for p in running(worker.pid, "sleep 4.71")
                if worker.pid in (up := ancestors(p))]

    [(sleep, pool)] = poll(command, 30, "the job's sleep runs under a pool process")
    os.kill(pool, signal.SIGKILL)
    poll(lambda: not alive(sleep), 10, "the killed pool process's command dies")
    record = cluster.final(run_id, 30)
    assert record.state == "FAILURE"
    assert record.error.startswith(f"worker process {pool} of {record.worker} died "
                                   "during the run"), record.error
    retries = poll(lambda: [r for r in cluster.store.runs("mortal", 10) if r.run_id != run_id],
                   30, "its retry is queued")
    assert [(r.retry_of, r.attempt) for r in retries] == [(run_id, 2)]
    assert cluster.final(retries[0].run_id, 60).state == "SUCCESS"
    assert done.read_text() == "once\n"  # the retry's: the killed command never completed
    assert len(cluster.store.runs("mortal", 10)) == 2 and cluster.state(run_id) == "FAILURE"
    assert worker.poll() is None


def schedule(cluster: Cluster, text: str) -> None:
    (cluster.repo / "schedules.d" / "s.yaml").write_text(f"schedules:\n{text}")


def runs_of(cluster: Cluster, name: str) -> list[RunRecord]:
    return [r for r in cluster.store.runs(limit=1000) if r.schedule == name]


def test_beat_failover_fires_each_firing_once(cluster: Cluster) -> None:
    schedule(cluster, "  tick: {job: side-job, every: 2s, overlap: allow}\n")
    first = cluster.start("beat")
    poll(lambda: len(runs_of(cluster, "tick")) >= 2, 40, "the first beat fires")
    second = cluster.start("beat")  # stands by: the first holds the lock
    poll(lambda: len(runs_of(cluster, "tick")) >= 4, 40, "more firings")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(10)
    before = len(runs_of(cluster, "tick"))
    poll(lambda: len(runs_of(cluster, "tick")) >= before + 3, 40, "the standby takes over")
    assert second.poll() is None
    fired = [r.scheduled_for for r in runs_of(cluster, "tick") if r.state != "MISSED"]
    assert len(fired) == len(set(fired)), "a firing ran twice"
    stamps = sorted(datetime.fromisoformat(f) for f in fired)
    assert all((b - a).total_seconds() % 2 == 0 for a, b in itertools.pairwise(stamps))


@pytest.mark.parametrize("policy", ["forbid", "replace"])
def test_overlap_policies(cluster: Cluster, policy: str) -> None:
    cluster.worker("side")
    schedule(cluster, f"  often: {{job: nap, every: 2s, overlap: {policy}}}\n")
    cluster.start("beat")
    if policy == "forbid":
        skipped = poll(lambda: [r for r in runs_of(cluster, "often")
                                if r.state == "SKIPPED"], 40, "a skipped firing")
        assert "of schedule often is still" in skipped[0].error
        assert "(overlap: forbid)" in skipped[0].error
    else:
        replaced = poll(lambda: [r for r in runs_of(cluster, "often")
                                 if r.state == "REVOKED"], 40, "a replaced run")
        assert "cancelled by schedule often (overlap: replace)" in replaced[0].error
    started = [r for r in runs_of(cluster, "often") if r.started]
    assert all(r.state != "SKIPPED" for r in started)


def test_remote_control_adds_and_cancels_consumers(cluster: Cluster) -> None:
    from runner.celery.app import create_app
    from runner.settings import Settings
    from runner.system import System

    cluster.worker("side")
    system = System(Settings.from_env(cluster.env), cluster.repo, cluster.repo / ".runner")
    app = create_app(system)
    pong = app.control.inspect(timeout=2).ping() or {}
    assert [h.split("-")[0] for h in pong] == ["side"]
    host = next(iter(pong))
    low = cluster.enqueue("quick-low")  # nobody consumes low yet
    app.control.add_consumer("low", destination=[host], reply=True, timeout=5)
    record = cluster.final(low)
    assert (record.state, record.worker) == ("SUCCESS", host)
    app.control.cancel_consumer("low", destination=[host], reply=True, timeout=5)

    def consumed() -> list[str]:
        queues = app.control.inspect(timeout=2).active_queues() or {}
        return sorted(q["name"] for q in queues.get(host, []))

    poll(lambda: consumed() == ["other"], 20, "the worker stops consuming low")


def test_up_runs_the_schedules_and_history_shows_them(cluster: Cluster) -> None:
    schedule(cluster, "  often: {job: side-job, every: 2s}\n")
    up = cluster.start("up", "--api-bind", f"127.0.0.1:{free_port()}")
    runs = poll(lambda: [r for r in runs_of(cluster, "often") if r.state == "SUCCESS"],
                60, "a scheduled run succeeds")
    history = cluster.runner("history", "side-job")
    assert history.returncode == 0
    assert runs[0].run_id in history.stdout and "SUCCESS" in history.stdout
    workers = matching(up.pid, " runner worker ")
    assert workers  # up's workers and their pool processes, found below it
    up.send_signal(signal.SIGTERM)
    assert up.wait(60) == 0
    assert not any(map(alive, workers))  # no worker left behind


@pytest.mark.parametrize("cluster", ["embedded"], indirect=True)  # Redis redelivers instead
def test_embedded_run_of_a_dead_worker_ends_failed_not_lost(cluster: Cluster) -> None:
    worker = cluster.worker("side")
    run_id = cluster.enqueue("slow")
    poll(lambda: cluster.state(run_id) == "STARTED", 30, "slow starts")
    os.killpg(worker.pid, signal.SIGKILL)  # the whole worker, parent included
    worker.wait(10)
    cluster.worker("side")
    record = cluster.final(run_id, 30)
    assert record.state == "FAILURE"
    assert record.error.startswith(f"worker {record.worker} died during the run")


def test_a_running_worker_follows_its_queue_assignment(cluster: Cluster) -> None:
    from runner.celery.app import create_app
    from runner.settings import Settings
    from runner.system import System

    cluster.worker("side")
    app = create_app(System(Settings.from_env(cluster.env), cluster.repo,
                            cluster.repo / ".runner"))

    def consumed() -> list[str]:
        queues = app.control.inspect(timeout=2).active_queues() or {}
        return sorted(q["name"] for qs in queues.values() for q in qs)

    (cluster.repo / "queues.yaml").write_text(QUEUES.replace("queues: [other], concurrency: 2",
                                                             "queues: [other, low]"))
    low = cluster.enqueue("quick-low")
    record = cluster.final(low, 30)  # picked up with no restart
    assert (record.state, record.worker.split("-")[0]) == ("SUCCESS", "side")
    assert consumed() == ["low", "other"]
    (cluster.repo / "queues.yaml").write_text(QUEUES)
    poll(lambda: consumed() == ["other"], 30, "the worker drops queue low")


def test_a_queued_run_of_a_removed_job_ends_with_the_reason(cluster: Cluster) -> None:
    run_id = cluster.enqueue("side-job")
    (cluster.repo / "jobs.d" / "j.yaml").write_text(JOBS.replace(
        "  side-job: {queue: other, targets: [here], steps: [{command: echo side}]}\n", ""))
    cluster.worker("side")
    record = cluster.final(run_id)
    assert record.state == "REVOKED"
    assert record.error.startswith("job side-job was removed from the configuration")
    assert record.started is not None and record.result is None


def test_sigterm_to_the_whole_process_group_stops_the_worker(cluster: Cluster) -> None:
    # systemd's default stop: SIGTERM to the main process and every pool process at once
    worker = cluster.worker("side")
    assert cluster.final(cluster.enqueue("side-job")).state == "SUCCESS"
    os.killpg(worker.pid, signal.SIGTERM)
    poll(lambda: worker.poll() is not None, 20, "the worker exits")
    assert worker.returncode == 0
