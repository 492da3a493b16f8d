"""Deadlines (issue 21) with real processes, on the embedded store and on Redis: beat's reaper
marks a run past its job's deadline late without stopping it, the notifier sends `late` once
to a loopback receiver (and the run's end after it), /metrics counts it, `runner history` and
the API show it; a schedule's deadline counts from the firing; a run ending in time is never
late; two processes watching the same store announce a late run once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from runner.celery.late import Deadlines, iso
from runner.config.load import build
from runner.notify.outbox import start
from runner.runs import RunRecord, RunState, new_run_id
from runner.settings import Settings
from runner.store import Store, keys
from runner.system import System
from tests.helpers.api import Api, start_api
from tests.helpers.cluster import QUEUES, Cluster, broker_env
from tests.helpers.procs import poll
from tests.helpers.receivers import Http, http_receiver

JOBS = """\
jobs:
  tardy:
    {{queue: other, targets: [here], deadline: 1s,
     steps: [{{command: 'while [ ! -e {go} ]; do sleep 0.05; done; echo done'}}]}}
  prompt: {{queue: other, targets: [here], deadline: 1s, steps: [{{command: echo quick}}]}}
  waiter:
    {{queue: other, targets: [here], deadline: 1h,
     steps: [{{command: 'while [ ! -e {sgo} ]; do sleep 0.05; done'}}]}}
"""
SCHEDULES = "schedules:\n  waiter-5s: {job: waiter, every: 5s, deadline: 2s}\n"
NOTIFICATIONS = """\
channels:
  hook: {webhook: "env:RUNNER_SECRET_HOOK"}
rules:
  - {on: [late], channels: [hook]}
  - {on: [succeeded], jobs: [tardy], channels: [hook]}
"""
SETTINGS = Settings(notify_attempts=3, notify_backoff=0.05, notify_timeout=5.0)


@dataclass
class Late:
    cluster: Cluster
    api: Api
    got: Http
    go: Path   # ends the run of `tardy`
    sgo: Path  # ends the runs of `waiter`

    def enqueue(self, job: str) -> str:  # by the API: no process to start
        with self.api.client() as api:
            answer = api.post(f"/api/jobs/{job}/run")
        assert answer.status_code == 201, answer.text
        return str(answer.json()["run_id"])

    def events(self, run_id: str) -> list[str]:
        return [b["event"] for _, b in list(self.got.accepted) if b["run_id"] == run_id]


@pytest.fixture(scope="module", params=["embedded", "redis"])
def late(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Late]:
    """beat, a worker, the API and a notifier (a thread here, as `runner publish --watch`
    runs it) on a configuration with deadlines, and a receiver of the notifications."""
    tmp = tmp_path_factory.mktemp(f"late-{request.param}")
    env, repo = broker_env(request, tmp), tmp / "config"
    for d in ("targets.d", "jobs.d", "schedules.d"):
        (repo / d).mkdir(parents=True)
    (repo / "queues.yaml").write_text(QUEUES.replace("concurrency: 2", "concurrency: 4"))
    (repo / "targets.d" / "t.yaml").write_text("targets:\n  here: {transport: local}\n")
    (repo / "jobs.d" / "late.yaml").write_text(JOBS.format(go=tmp / "go", sgo=tmp / "sgo"))
    (repo / "schedules.d" / "late.yaml").write_text(SCHEDULES)
    (repo / "notifications.yaml").write_text(NOTIFICATIONS)
    cluster, stop = Cluster(repo, env), threading.Event()
    with http_receiver() as got:
        try:
            cluster.start("beat")
            cluster.worker("side")
            api = start_api(cluster)
            system = System(Settings.from_env(env), repo, repo / ".runner")
            start(cluster.store, system.config, SETTINGS, {"RUNNER_SECRET_HOOK": got.url()},
                  stop)
            yield Late(cluster, api, got, tmp / "go", tmp / "sgo")
        finally:
            stop.set()
            (tmp / "go").touch()
            (tmp / "sgo").touch()
            if "api" in locals():
                api.stop()
            cluster.stop()


def test_a_late_run_is_marked_announced_once_counted_and_still_succeeds(late: Late) -> None:
    c = late.cluster
    prompt = late.enqueue("prompt")
    assert c.final(prompt).state == RunState.SUCCESS
    tardy = late.enqueue("tardy")
    record: RunRecord = poll(lambda: (r := c.store.run(tardy)) and r.late and r, 30,
                             "the run is marked late")
    assert record.state == RunState.STARTED  # not stopped
    assert record.late == iso(float(record.started or 0) + 1)
    poll(lambda: late.events(tardy) == ["late"], 30, "the late event reaches the receiver")
    hook = next(b for _, b in late.got.accepted if b["run_id"] == tardy)
    assert (hook["job"], hook["status"]) == ("tardy", "STARTED")

    def metric() -> str:
        return httpx.get(f"{late.api.url}/metrics", timeout=10).text
    poll(lambda: 'runner_runs_late_total{job="tardy"} 1\n' in metric(), 10, "the metric")

    late.go.touch()
    done = c.final(tardy, 30)
    assert done.state == RunState.SUCCESS and done.late == record.late  # the end kept it
    poll(lambda: late.events(tardy) == ["late", "succeeded"], 30, "the end's event")
    assert 'runner_runs_late_total{job="tardy"} 1\n' in metric()
    with late.api.client() as api:
        assert api.get(f"/api/runs/{tardy}").json()["late"] == record.late
        assert [r.get("late") for r in api.get("/api/runs?job=tardy").json()["runs"]] == [
            record.late]
    history = c.runner("history", tardy)
    assert f"late: its deadline passed at {record.late}" in history.stdout, history.stderr
    # `prompt` ended before its deadline, which passed before tardy's: never late
    assert (c.store.run(prompt) or RunRecord(prompt)).late is None
    assert late.events(prompt) == [] and 'late_total{job="prompt"}' not in metric()


def test_a_schedule_deadline_counts_from_the_firing(late: Late) -> None:
    c = late.cluster
    run: RunRecord = poll(lambda: next((r for r in c.store.runs("waiter", 20) if r.late), None),
                          30, "a run of the schedule is late")
    assert run.schedule == "waiter-5s" and run.state == RunState.STARTED
    assert run.late == iso(datetime.fromisoformat(str(run.scheduled_for)).timestamp() + 2)
    poll(lambda: late.events(run.run_id) == ["late"], 30, "its late event")
    late.sgo.touch()
    done = c.final(run.run_id, 30)
    assert done.state == RunState.SUCCESS and done.late == run.late
    with late.api.client() as api:  # the schedule's and the job's pages say so
        page = api.get("/api/schedules/waiter-5s").json()
        assert page["deadline"] == 2 and api.get("/api/jobs/waiter").json()["deadline"] == 3600
        assert {f["run_id"]: f["overdue"] for f in page["firings"]}[run.run_id] == run.late


def test_two_watchers_of_one_store_announce_a_late_run_once(store: Store) -> None:
    """Two beats' reapers (the lock moving from one to the other) look at the same run."""
    config = build("rev1", {"jobs": {"tardy": {"queue": "q", "targets": ["here"],
                                               "deadline": "1s", "steps": [{"command": "x"}]}}})
    now = time.time()
    running = RunRecord(new_run_id(now - 5), job="tardy", state=RunState.STARTED,
                        created=now - 5, started=now - 5)
    ended = RunRecord(new_run_id(now - 5), job="tardy", state=RunState.SUCCESS,
                      created=now - 5, started=now - 5, finished=now - 4.5)
    store.save_runs([running, ended])
    one, two = Deadlines(store), Deadlines(store)
    assert one.tick(config, now) == [running.run_id]
    assert two.tick(config, now) == []  # it reads the record: late already
    assert not two.mark(running, now - 4, now)  # it read it before one marked it
    assert store.tallies(keys.LATE) == {"tardy": 1.0}
    feed = store.to_publish(10, keys.NOTIFY)
    assert [i for i in feed if i.startswith("late:")] == [keys.late(running.run_id)]
    after = store.run(running.run_id)
    assert after is not None and after.late == iso(now - 4) and after.state == RunState.STARTED
    assert (store.run(ended.run_id) or ended).late is None
    store.end_run(running.run_id, {"state": "SUCCESS", "finished": time.time()}, ())
    assert (store.run(running.run_id) or running).late == iso(now - 4)
    assert store.to_publish(10, keys.NOTIFY)[-1] == running.run_id  # its end's events, too


class Died(Exception):
    """The marking process died here."""


@pytest.mark.parametrize("dies_at", ["tally", "to_notify", "end_run"])
def test_a_mark_cut_short_is_completed_by_the_next_look(
        store: Store, monkeypatch: pytest.MonkeyPatch, dies_at: str) -> None:
    """A beat dying between the writes of a mark: the next beat's look finishes it."""
    config = build("rev1", {"jobs": {"tardy": {"queue": "q", "targets": ["here"],
                                               "deadline": "1s", "steps": [{"command": "x"}]}}})
    now = time.time()
    running = RunRecord(new_run_id(now - 5), job="tardy", state=RunState.STARTED,
                        created=now - 5, started=now - 5)
    store.save_run(running)

    def died(*_: object) -> None:
        raise Died

    with monkeypatch.context() as m:
        m.setattr(store, dies_at, died)
        with pytest.raises(Died):
            Deadlines(store).tick(config, now)
    assert Deadlines(store).tick(config, now + 1) == []  # it completes: claimed already
    after = store.run(running.run_id)
    assert after is not None and after.late == iso(now - 4)
    feed = store.to_publish(10, keys.NOTIFY)
    assert [i for i in feed if i.startswith("late:")] == [keys.late(running.run_id)]
    # the count is the claimer's: one dying right after its claim leaves the run uncounted
    assert store.tallies(keys.LATE) == ({} if dies_at == "tally" else {"tardy": 1.0})
