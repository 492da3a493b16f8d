"""What the system is doing: the revisions, suspensions, beat and the report publisher
(`status`, what the API shows), and with the live workers, queues, active runs and
schedules (`detail`, what `runner status` shows)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from celery import Celery

from runner.celery.app import queue_length
from runner.config.model import ConfigSet
from runner.ops import lateness, limits, overview
from runner.runs import ACTIVE
from runner.store import keys
from runner.store.entries import (
    WorkerHeartbeat,
    read_beat,
    read_publisher,
    read_suspended,
    read_worker,
)
from runner.store.generation import wiped
from runner.system import System

ACTIVE_SCAN = 200  # newest runs looked at for the active ones
SCHEDULE_FIELDS = ("job", "next_fire", "last_fire", "last_run_id")


@dataclass(frozen=True)
class Status:
    """The revisions (overview.revisions), broker, suspensions, beat and the report
    publisher's status (its REPORT_FIELDS, unmasked: a front-end decides what it shows)."""

    revisions: dict[str, Any]
    broker: str
    suspended: dict[str, Any]
    beat: dict[str, Any] | None
    beat_alive: bool
    reports: dict[str, Any]


@dataclass(frozen=True)
class Detail:
    """Status, with the live workers, the queues, the active runs, each schedule's next and
    last firing, a wiped store's warning and the firing lateness."""

    status: Status
    workers: dict[str, dict[str, Any]]
    queues: dict[str, dict[str, Any]]
    active_runs: list[dict[str, Any]]
    schedules: dict[str, dict[str, Any]]
    wiped: str | None
    lateness: dict[str, Any]
    limits: dict[str, dict[str, Any]]  # ops.limits.view: holders and waiters per limit


def status(system: System) -> Status:
    """The system's status as the store holds it."""
    store = system.store
    paused, beat, reports = read_suspended(store), read_beat(store), read_publisher(store)
    return Status(
        revisions=overview.revisions(store),
        broker="redis" if system.settings.redis_url else "embedded",
        suspended=paused.to_json() if paused else {},
        beat=beat.to_json() if beat else None, beat_alive=store.holder(keys.BEAT) is not None,
        reports={k: v for k, v in (reports.to_json() if reports else {}).items()
                 if k in overview.REPORT_FIELDS})


def detail(system: System, app: Celery, config: ConfigSet) -> Detail:
    """Status and what the workers (asked through Celery's remote control) are doing."""
    store = system.store
    store.ping()  # Redis away, or a full or read-only state directory: one sentence
    inspect = app.control.inspect(timeout=1.0)
    queues = inspect.active_queues() or {}
    active = inspect.active() or {}
    return Detail(
        status=status(system),
        workers={host: {"queues": sorted(q["name"] for q in qs),
                        "active": len(active.get(host, [])),
                        "revision": (read_worker(store, host) or WorkerHeartbeat()).revision}
                 for host, qs in sorted(queues.items())},
        queues={q: {"length": queue_length(app, q), "priority": config.queues[q].priority}
                for q in config.queues},
        active_runs=[r.to_json() for r in store.runs(limit=ACTIVE_SCAN) if r.state in ACTIVE],
        schedules={name: {k: s[k] for k in SCHEDULE_FIELDS}
                   for name, s in overview.schedules(store, config).items()},
        wiped=wiped(store.get(keys.GENERATION)),
        lateness=lateness.summary(store.tallies(keys.LATENESS)),
        limits=limits.view(store, config))
