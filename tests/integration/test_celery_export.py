"""`runner plan --format celery`: a Celery configuration module that imports, loads with
config_from_object, and whose beat_schedule entries fire, through Celery's own is_due and
remaining_estimate, exactly when `runner plan` says."""

from __future__ import annotations

import json
import types
from datetime import datetime, timedelta
from typing import Any

import pytest
from celery import Celery

from tests.helpers.cluster import Cluster
from tests.helpers.repos import copy_demo, runner

NOW = "2027-05-10T10:17:23+00:00"  # no zone below changes its offset within 10 days
# name -> the schedule's fields (job tmp-cleanup on execution, or health-check on system)
SCHEDULES: dict[str, dict[str, Any]] = {
    "c-berlin": {"cron": "30 2 * * *", "timezone": "Europe/Berlin"},
    "c-steps-new-york": {"cron": "*/15 9-17 * * 1-5", "timezone": "America/New_York"},
    "c-names-kolkata": {"cron": "0 6 * may,jul mon", "timezone": "Asia/Kolkata"},
    "c-hashed-lord-howe": {"cron": "H H(0-5) * * *", "timezone": "Australia/Lord_Howe"},
    "c-sunday-7-chatham": {"cron": "45 23 * * 7", "timezone": "Pacific/Chatham"},
    "c-jitter-sao-paulo": {"cron": "0 */4 * * *", "jitter": "30m",
                           "timezone": "America/Sao_Paulo"},
    "e-2s": {"every": "2s"},
    "e-90m-jitter-tokyo": {"every": "90m", "jitter": "10m", "timezone": "Asia/Tokyo"},
}
COUNT = 4


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    repo = copy_demo(tmp_path_factory.mktemp("export") / "repo")
    lines = ["schedules:"]
    for name, fields in {**SCHEDULES,
                         "c-either-day": {"cron": "0 12 1 * 1"},
                         "at-once": {"at": "2027-06-01T00:00:00+00:00"}}.items():
        lines += [f"  {name}:", "    job: health-check" if name.startswith("e-")
                  else "    job: tmp-cleanup"]
        lines += [f"    {k}: {json.dumps(v)}" for k, v in fields.items()]
    (repo / "schedules.d" / "export.yaml").write_text("\n".join(lines) + "\n")
    source = runner("plan", "--format", "celery", "--repo", str(repo), cache=repo / ".c")
    assert source.returncode == 0, source.stderr
    plan = runner("plan", "--format", "json", "--now", NOW, "--count", str(COUNT),
                  "--repo", str(repo), cache=repo / ".c")
    assert plan.returncode == 0, plan.stderr
    return source.stdout, json.loads(plan.stdout)


def _load(source: str) -> tuple[types.ModuleType, Celery]:
    mod = types.ModuleType("runner_celery_config")
    exec(compile(source, "runner_celery_config.py", "exec"), mod.__dict__)
    app = Celery("export-test", set_as_current=False)
    app.config_from_object(mod)
    return mod, app


def test_the_module_loads_with_queues_and_routes(exported: tuple[str, dict[str, Any]]) -> None:
    mod, app = _load(exported[0])
    assert [(q.name, q.routing_key) for q in app.conf.task_queues] == [
        ("execution", "execution"), ("system", "system")]  # highest priority first
    assert app.conf.timezone == "UTC" and app.conf.task_routes == (mod.route_run_job,)
    # runner's routing: the job's queue, message priority 9 - the queue's priority
    assert mod.route_run_job("runner.run_job", (), {"job": "health-check"}, {}) == {
        "queue": "system", "priority": 6}
    assert mod.route_run_job("other.task", (), {"job": "health-check"}, {}) is None
    entry = app.conf.beat_schedule["c-berlin"]
    assert (entry["task"], entry["options"]) == ("runner.run_job",
                                                 {"queue": "execution", "priority": 0})
    assert entry["kwargs"] == {"job": "tmp-cleanup", "revision": exported[1]["revision"],
                               "limit": None}
    # what Celery cannot express is said, not exported wrong
    assert "at-once" not in app.conf.beat_schedule
    assert "# once: Celery has no one-shot schedule; runner's beat fires it" in exported[0]
    assert "day-of-month OR day-of-week; Celery's crontab needs both" in exported[0]
    assert "# jitter 30m: each firing" in exported[0]


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_celery_fires_when_runner_plans(exported: tuple[str, dict[str, Any]],
                                        name: str) -> None:
    _mod, app = _load(exported[0])
    sched = app.conf.beat_schedule[name]["schedule"]
    clock = [datetime.fromisoformat(NOW)]
    sched.nowfun, sched.app = (lambda: clock[0]), app
    expected = [datetime.fromisoformat(t) for t in exported[1]["schedules"][name]["next"]]
    last, fired = clock[0], []
    for _ in range(COUNT):
        clock[0] = last
        nxt = last + sched.remaining_estimate(last)
        clock[0] = nxt - timedelta(seconds=1)
        assert not sched.is_due(last)[0], (name, nxt)
        clock[0] = nxt
        assert sched.is_due(last)[0], (name, nxt)
        fired.append(nxt)
        last = nxt
    assert fired == expected


def test_an_entry_sent_by_celerys_beat_runs_on_a_runner_worker(
        cluster: Cluster) -> None:
    from celery.beat import Scheduler

    from runner.celery.app import create_app
    from runner.settings import Settings
    from runner.system import System

    (cluster.repo / "schedules.d" / "s.yaml").write_text(
        "schedules:\n  hourly: {job: quick-high, every: 1h}\n")
    source = cluster.runner("plan", "--format", "celery")
    assert source.returncode == 0, source.stderr
    mod, _app = _load(source.stdout)
    app = create_app(System(Settings.from_env(cluster.env), cluster.repo,
                            cluster.repo / ".runner"))
    app.conf.beat_schedule = mod.beat_schedule
    cluster.worker("busy")
    beat = Scheduler(app)  # Celery's own beat scheduler sends the entry, as it would when due
    sent = beat.apply_async(beat.schedule["hourly"])
    record = cluster.final(sent.id)  # recorded under the message's task id: no run_id sent
    assert (record.state, record.job, record.worker.split("-")[0]) == (
        "SUCCESS", "quick-high", "busy")
