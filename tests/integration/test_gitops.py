"""The GitOps loop end to end: `runner up` following a bare remote that commits are pushed to,
on Redis and on the embedded default — real git, real reconciler, beat and worker processes."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.runs import RunRecord
from tests.helpers.cluster import Cluster, broker_env
from tests.helpers.procs import alive, cmdline, descendants, poll
from tests.helpers.repos import git
from tests.servers import free_port

QUEUES = """\
queues: {a: {}}
workers:
  w: {queues: [a], concurrency: 2}
"""
QUEUES_AB = """\
queues: {a: {}, b: {}}
workers:
  w: {queues: [a, b], concurrency: 3}
"""
JOBS = """\
jobs:
  slow: {queue: a, targets: [here], steps: [{command: sleep 1.5; echo slept}]}
"""
QUICK = "  quick: {queue: b, targets: [here], steps: [{command: echo quick}]}\n"


class Loop:
    """A work clone pushing to a bare remote that `runner up` in `cluster.repo` follows."""

    def __init__(self, cluster: Cluster, tmp: Path) -> None:
        self.cluster, self.work, self.bare = cluster, tmp / "work", tmp / "remote.git"
        self.files: dict[str, str] = {
            "queues.yaml": QUEUES, "targets.d/t.yaml": "targets:\n  here: {transport: local}\n",
            "jobs.d/j.yaml": JOBS, "schedules.d/s.yaml": "schedules: {}\n"}
        self.work.mkdir()
        git(self.work, "init", "-q", "-b", "main")
        self.push({}, "start")
        git(self.work, "clone", "-q", "--bare", str(self.work), str(self.bare))
        git(self.work, "remote", "add", "origin", str(self.bare))
        for rel, text in self.files.items():  # runner up's own --repo starts from the same
            (cluster.repo / rel).parent.mkdir(parents=True, exist_ok=True)
            (cluster.repo / rel).write_text(text)

    def push(self, files: dict[str, str], message: str, force: bool = False) -> str:
        self.files.update(files)
        for rel, text in self.files.items():
            (self.work / rel).parent.mkdir(parents=True, exist_ok=True)
            (self.work / rel).write_text(text)
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "-m", message)
        if self.bare.exists():
            git(self.work, "push", "-q", *(["--force"] if force else []), "origin", "main")
        return git(self.work, "rev-parse", "HEAD")

    def status(self) -> dict[str, Any]:
        done = self.cluster.runner("status", "--format", "json")
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    def applied(self, revision: str) -> dict[str, Any]:
        """Waits until every process runs `revision`: reconciled, beat and the worker."""
        store = self.cluster.store
        poll(lambda: (store.get("reconcile") or {}).get("applied_revision") == revision, 30,
             f"{revision[:12]} applied")
        return dict(poll(lambda: (b := store.get("beat") or {}).get("revision") == revision
                         and b, 30, f"beat runs {revision[:12]}"))

    def runs(self, schedule: str) -> list[RunRecord]:
        return [r for r in self.cluster.store.runs(limit=500) if r.schedule == schedule]


@pytest.fixture(params=["embedded", "redis"])
def loop(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Loop]:
    env = broker_env(request, tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    cluster = Cluster(home, env)
    yield Loop(cluster, tmp_path)
    cluster.stop()


def test_pushes_change_what_runs_without_restart_and_bad_ones_change_nothing(
        loop: Loop) -> None:
    cluster = loop.cluster
    first = git(loop.work, "rev-parse", "HEAD")
    cluster.start("up", "--source", str(loop.bare), "--branch", "main",
                      "--api-bind", f"127.0.0.1:{free_port()}")
    loop.applied(first)
    worker = poll(lambda: [k for k in loop.status()["workers"]], 30, "the worker answers")[0]

    # runs in flight while the configuration changes under them: none is lost
    slow = [cluster.enqueue("slow") for _ in range(3)]
    # any of them: each enqueue is a process of its own, and on a busy machine the first
    # run has ended by the time the third enqueue returns
    poll(lambda: "STARTED" in map(cluster.state, slow), 30, "a slow run starts")

    # a queue newly assigned to the running worker, and a schedule: both within seconds
    pushed = time.time()
    grown = loop.push({"queues.yaml": QUEUES_AB, "jobs.d/j.yaml": JOBS + QUICK,
                       "schedules.d/s.yaml":
                       "schedules:\n  tick: {job: quick, every: 1s, overlap: allow}\n"},
                      "serve b, tick every second")
    loop.applied(grown)
    ticks = poll(lambda: [r for r in loop.runs("tick") if r.state == "SUCCESS"], 30,
                 "tick fires and its run succeeds on queue b")
    assert min(r.created for r in loop.runs("tick")) - pushed < 3.5  # push to first firing
    assert ticks[0].worker == worker  # the same worker process, no restart
    assert ticks[0].revision == grown
    for run_id in slow:
        record = cluster.final(run_id)
        assert (record.state, record.deliveries) == ("SUCCESS", 1), record
        assert record.result["targets"]["here"]["stdout"] == "slept\n"
    status = loop.status()
    assert status["workers"][worker]["queues"] == ["a", "b"]
    assert status["workers"][worker]["revision"] == grown

    # a removed schedule never fires again; its replacement does
    swapped = loop.push({"schedules.d/s.yaml":
                         "schedules:\n  tock: {job: quick, every: 1s, overlap: allow}\n"
                         "  nightly: {job: quick, cron: '0 3 * * *'}\n"},
                        "tock instead of tick")
    loaded = loop.applied(swapped)["loaded_at"]
    poll(lambda: len([r for r in loop.runs("tock") if r.created > loaded + 0.5]) >= 2, 30,
         "tock fires twice after the swap")
    assert [r for r in loop.runs("tick") if r.created > loaded] == []

    # an invalid push changes nothing; status shows both revisions and where it is wrong
    bad = loop.push({"jobs.d/j.yaml": JOBS + QUICK + "  broken: {queue: nowhere, targets: "
                                                     "[here], steps: [{command: 'true'}]}\n"},
                    "break it")
    status = poll(lambda: (s := loop.status())["attempted_revision"] == bad and s, 30,
                  "the bad revision is attempted")
    assert status["applied_revision"] == swapped
    assert [(e["file"], e["line"]) for e in status["errors"]] == [("jobs.d/j.yaml", 4)]
    assert "nowhere" in status["errors"][0]["message"]
    before = len(loop.runs("tock"))
    poll(lambda: len(loop.runs("tock")) >= before + 2, 30, "tock keeps firing")

    # history rewritten and force-pushed: the new head applies
    git(loop.work, "reset", "-q", "--hard", "HEAD~1")
    assert loop.status()["schedules"]["nightly"]["next_fire"][11:16] == "03:00"
    rewritten = loop.push({"jobs.d/j.yaml": JOBS + QUICK, "schedules.d/s.yaml":
                           "schedules:\n  tock: {job: quick, every: 2s, overlap: allow}\n"
                           "  nightly: {job: quick, cron: '0 4 * * *'}\n"},
                          "rewrite: tock every 2s, nightly at 4", force=True)
    loop.applied(rewritten)
    status = loop.status()
    assert (status["applied_revision"], status["errors"]) == (rewritten, [])
    assert status["schedules"]["nightly"]["next_fire"][11:16] == "04:00"  # the cron moved

    # the remote goes away: the system keeps running what it runs, and says why
    shutil.move(loop.bare, loop.bare.with_name("moved.git"))
    loop.push({"targets.d/t.yaml": "targets:\n  here: {transport: local}\n  "
                                   "there: {transport: local}\n"}, "unseen")
    cluster.runner("reconcile", "--once", "--source", str(loop.bare))  # like the next poll
    status = poll(lambda: (s := loop.status())["fetch_error"] and s, 30, "status says why")
    assert "cannot fetch branch 'main'" in status["fetch_error"]
    assert status["applied_revision"] == rewritten
    before = len(loop.runs("tock"))
    poll(lambda: len(loop.runs("tock")) > before, 30, "tock still fires")


def test_up_starts_a_worker_a_commit_adds_and_restarts_a_child_that_died(
        tmp_path: Path) -> None:
    import signal

    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["RUNNER_CACHE_DIR"] = str(tmp_path / "cache")
    home = tmp_path / "home"
    home.mkdir()
    cluster = Cluster(home, env)
    loop = Loop(cluster, tmp_path)
    try:
        up = cluster.start("up", "--source", str(loop.bare), "--branch", "main",
                           "--api-bind", f"127.0.0.1:{free_port()}")
        loop.applied(git(loop.work, "rev-parse", "HEAD"))

        def pids(what: str) -> list[int]:  # up's children (and their pool processes)
            return [p for p in descendants(up.pid)
                    if re.search(f"runner {what} .*--repo {home}$", cmdline(p).strip())]

        assert pids("worker v") == []
        added = loop.push({"queues.yaml": "queues: {a: {}, c: {}}\nworkers:\n  w: {queues: [a]}"
                                          "\n  v: {queues: [c], concurrency: 1}\n",
                           "jobs.d/j.yaml": JOBS + "  cjob: {queue: c, targets: [here], "
                                                   "steps: [{command: echo c}]}\n"},
                          "a worker v for queue c")
        loop.applied(added)
        record = cluster.final(cluster.enqueue("cjob"))
        assert (record.state, record.worker.split("-")[0]) == ("SUCCESS", "v")
        workers_v = pids("worker v")
        assert workers_v

        beat = poll(lambda: pids("beat"), 10, "beat runs")
        os.kill(beat[0], signal.SIGKILL)
        again = poll(lambda: [p for p in pids("beat") if p not in beat], 15, "beat is back")
        assert again and again[0] != beat[0]

        loop.push({"queues.yaml": QUEUES, "jobs.d/j.yaml": JOBS}, "no more v")
        poll(lambda: pids("worker v") == [] and not any(map(alive, workers_v)), 30,
             "worker v is stopped")
    finally:
        cluster.stop()
