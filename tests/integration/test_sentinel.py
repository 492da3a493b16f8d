"""Redis Sentinel: REDIS_URL's sentinel:// form (a table), and runner's store over real
Sentinels (tests/servers.py start_sentinel) riding out a failover."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import redis

from runner.adapters.redis_url import broker_url, passwords, sentinel, transport_options
from runner.errors import StoreUnavailable, UsageError
from runner.runs import FINAL, RunRecord
from runner.settings import Settings, masked_url
from runner.store.redis import RedisStore
from tests.helpers.chaos import FAST_FILES
from tests.helpers.cluster import finished_since
from tests.helpers.procs import poll
from tests.helpers.repos import Commit
from tests.servers import free_port, redis_port, runner_up, start_sentinel

URL = "sentinel://:pw@h1:26379/2;sentinel://:pw@h2:26380/2?master_name=mm&sentinel_password=sp"

BAD = [("sentinel://h1:26379", "no master: add ?master_name=NAME"),
       ("sentinel://h1;redis://h2?master_name=m", "'redis://h2?master_name=m' is not a sentinel"),
       ("sentinel://h1/x?master_name=m", "the database 'x' is not a number"),
       ("sentinel://h1?master_name=m&db=1", "unknown Sentinel option 'db'"),
       ("sentinel://h1:99999?master_name=m", "is not HOST:PORT"),
       ("sentinel://h1/1;sentinel://h2/2?master_name=m", "different databases [1, 2]")]


def test_a_sentinel_url_for_the_store_and_the_broker() -> None:
    s = sentinel(URL)
    assert s is not None
    assert (s.hosts, s.master_name, s.db, s.password) == (
        (("h1", 26379), ("h2", 26380)), "mm", 2, "pw")
    assert broker_url(URL) == "sentinel://:pw@h1:26379/2;sentinel://:pw@h2:26380/2"
    assert transport_options(URL) == {"master_name": "mm", "sentinel_kwargs": {"password": "sp"}}
    assert transport_options("redis://h/0") == {} and sentinel("redis://h/0") is None
    assert masked_url(URL) == ("sentinel://:**@h1:26379/2;sentinel://:**@h2:26380/2"
                               "?master_name=mm&sentinel_password=**")
    assert set(passwords(URL)) == {"pw", "sp"}
    assert Settings.from_env({"REDIS_URL": URL}).redis_url == URL


@pytest.mark.parametrize(("url", "said"), BAD)
def test_a_bad_sentinel_url_is_one_sentence(url: str, said: str) -> None:
    with pytest.raises(UsageError, match="REDIS_URL") as e:
        Settings.from_env({"REDIS_URL": url})
    assert said in str(e.value), str(e.value)


def test_unreachable_sentinels_exit_2_in_one_sentence(tmp_path: Path) -> None:
    url = f"sentinel://127.0.0.1:{free_port()}?master_name=mymaster"
    done = subprocess.run([sys.executable, "-m", "runner", "status", "--repo", str(tmp_path)],
                          env={"REDIS_URL": url, "PATH": "/usr/bin:/bin"}, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "no Sentinel at REDIS_URL=" in done.stderr, done.stderr


def test_the_store_follows_a_failover_and_loses_no_replicated_record(tmp_path: Path) -> None:
    """Records written (and replicated: WAIT) before the master is killed with -9 are all on
    the promoted replica; the store keeps writing there by itself."""
    cluster = start_sentinel(tmp_path / "sentinel")
    try:
        store = RedisStore(cluster.url)
        old = cluster.master_port()
        for i in range(50):
            store.save_run(RunRecord.from_json(
                {"run_id": f"r{i}", "job": "j", "state": "SUCCESS", "created": i}))
        assert redis.Redis(port=old).wait(1, 5000) == 1  # replicated before the failover
        cluster.kill(old)
        killed = time.monotonic()

        def write(i: int) -> bool:
            try:
                store.save_run(RunRecord.from_json(
                    {"run_id": f"r{i}", "job": "j", "state": "SUCCESS", "created": i}))
            except StoreUnavailable:
                return False
            return True

        poll(lambda: write(50), 60, "a write on the promoted replica")
        print(f"store writes again {time.monotonic() - killed:.1f}s after kill -9 of the master")
        assert cluster.master_port() != old
        for i in range(51, 60):
            assert write(i)
        kept = {r.run_id for r in store.runs(limit=500)}
        assert kept == {f"r{i}" for i in range(60)}
        assert redis_port(cluster.servers[1].url) == cluster.master_port()
    finally:
        cluster.stop()


def test_a_worker_takes_runs_through_the_sentinels(tmp_path: Path) -> None:
    """The broker (kombu's Sentinel transport, runner's QoS) and the store on one REDIS_URL."""
    from tests.helpers.cluster import a_worker_runs_a_job

    cluster = start_sentinel(tmp_path / "sentinel")
    try:
        a_worker_runs_a_job(cluster.url, tmp_path)
    finally:
        cluster.stop()


def test_the_store_leaves_a_former_master_that_is_still_up(tmp_path: Path) -> None:
    """SENTINEL FAILOVER keeps the former master up, taking writes until the Sentinels make
    it a replica (~10 s, wiping them); the store moves to the new master within a few seconds
    (redis-py alone stays until that conversion disconnects it)."""
    cluster = start_sentinel(tmp_path / "sentinel")
    try:
        store = RedisStore(cluster.url)
        old = cluster.master_port()
        cluster.sentinel(cluster.ports[0]).execute_command("SENTINEL", "FAILOVER", "mymaster")
        start = time.monotonic()
        acked: list[tuple[int, float]] = []
        former = redis.Redis(port=old)
        i = 0
        while former.info("replication")["role"] == "master":  # until converted (deadline:)
            assert time.monotonic() - start < 60, "the former master was never converted"
            try:
                store.put(f"k{i}", i)
                acked.append((i, time.monotonic() - start))
            except StoreUnavailable:
                pass
            i += 1
            time.sleep(0.05)  # a steady trickle of writes, not a wait for a state
        new = redis.Redis(port=cluster.master_port())
        lost = [at for n, at in acked if not new.exists(f"runner:kv:k{n}")]
        print(f"{len(lost)} of {len(acked)} writes lost, the last {max(lost, default=0):.1f}s "
              "after SENTINEL FAILOVER")
        assert acked[-1][1] > 5  # the former master stayed up long enough to tell
        assert max(lost, default=0) < 4, lost
    finally:
        cluster.stop()


def firings(records: list[RunRecord]) -> list[str]:
    """Each firing of `fast` the records account for: a run's scheduled_for, or each 2 s
    instant of a MISSED record's range."""
    from datetime import datetime, timedelta

    out = []
    for r in records:
        if r.schedule != "fast" or not r.scheduled_for:
            continue
        if r.state != "MISSED":
            out.append(str(r.scheduled_for))
            continue
        first, last = re.findall(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?[+-]\d\d:\d\d",
                                 str(r.error))[:2]
        at, end = datetime.fromisoformat(first), datetime.fromisoformat(last)
        while at <= end:
            out.append(at.isoformat())
            at += timedelta(seconds=2)
    return out


def test_up_rides_out_a_sentinel_failover_and_a_killed_master(
        demo_repo: Path, commit: Commit, tmp_path: Path) -> None:
    """`runner up` on Sentinel with an every-2s schedule: SENTINEL FAILOVER, then kill -9 of
    the new master; runner up keeps running, firings resume by themselves, each firing is run
    or recorded MISSED exactly once, and every run ends."""
    commit(FAST_FILES, "an every-2s schedule")
    cluster = start_sentinel(tmp_path / "sentinel")
    env = {**os.environ, "REDIS_URL": cluster.url, "RUNNER_CACHE_DIR": str(tmp_path / "cache")}
    log = tmp_path / "up.log"
    try:
        with runner_up(demo_repo, log, env=env) as up:
            poll(lambda: len(finished_since(cluster.url, 0)) >= 2, 90, "scheduled runs")
            cluster.sentinel(cluster.ports[0]).execute_command("SENTINEL", "FAILOVER",
                                                               "mymaster")
            failed_over = time.time()
            first = poll(lambda: finished_since(cluster.url, failed_over + 1), 60,
                         "a run after SENTINEL FAILOVER")[0]
            print(f"SENTINEL FAILOVER -> next run SUCCESS {first - failed_over:.1f}s")
            poll(cluster.ready, 60, "the former master is a replica in sync")
            cluster.kill(cluster.master_port())
            killed = time.time()
            first = poll(lambda: finished_since(cluster.url, killed + 1), 60,
                         "a run after kill -9 of the master")[0]
            print(f"kill -9 of the master -> next run SUCCESS {first - killed:.1f}s")
            assert up.poll() is None
            end = time.time()
            store = RedisStore(cluster.url)

            def ended() -> list[RunRecord] | None:
                runs = [r for r in store.runs(job="quick", limit=1000)
                        if float(r.created or 0) < end]
                return runs if all(r.state in FINAL for r in runs) else None

            runs = poll(ended, 60, "every run created before the end finished")
        seen = firings(runs)
        assert len(seen) == len(set(seen)), sorted(x for x in seen if seen.count(x) > 1)
        instants = sorted(datetime.fromisoformat(x) for x in seen)
        gaps = [b - a for a, b in itertools.pairwise(instants)]
        assert all(g == timedelta(seconds=2) for g in gaps), [str(g) for g in gaps]
        text = log.read_text()
        assert "Traceback" not in text, text[text.find("Traceback") - 500:][:4000]
    finally:
        cluster.stop()
