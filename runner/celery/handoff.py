"""Beat's firing hand-off: the outbox a firing writes (the records to save, the run to send,
the run to cancel), and completing an outbox a beat left when it died (each step only if not
done yet)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from celery import Celery

from runner.celery.tasks import bury, cancel, pending, send
from runner.config.model import ConfigSet, Schedule
from runner.errors import UsageError
from runner.runs import ACTIVE, RunRecord, RunState, new_run_id
from runner.store import Store
from runner.store.entries import Suspended
from runner.timetable import Decision

log = logging.getLogger("runner.beat")
KEEP = 30.0  # seconds of hand-offs remembered: a failover loses the last few seconds' writes


def final_record(s: Schedule, config: ConfigSet, state: str, why: str,
           at: datetime) -> dict[str, Any]:
    """A firing's final record (MISSED, SKIPPED) with the reason."""
    now = time.time()
    return {"run_id": new_run_id(), "job": s.job, "trigger": f"schedule {s.name}",
            "schedule": s.name, "state": state, "created": now, "finished": now,
            "error": why, "scheduled_for": at.isoformat(), "revision": config.revision}


def complete(app: Celery, store: Store, name: str, state: dict[str, Any],
             config: ConfigSet) -> None:
    """Does what the outbox in `state` says, each step only if not done yet: its records
    saved, the run it replaces cancelled, its run's message sent (again, while the run is
    PENDING: a duplicate runs nothing); then takes it out of `state` (the caller writes it)."""
    box = state.pop("outbox")
    if box.get("cancel"):
        with contextlib.suppress(UsageError):  # it ended meanwhile
            cancel(app, store, str(box["cancel"]), f"schedule {name} (overlap: replace)")
    for r in box.get("records", []):
        record = RunRecord.from_json(r)
        current = store.run(record.run_id)
        if current is None:
            store.save_run(record)
            current = record
        if record.run_id == box.get("send") and current.state == RunState.PENDING:
            send(app, config, record)
            log.info("schedule %s fired %s: run %s (completing a hand-off)", name,
                     r["scheduled_for"], r["run_id"])


def outbox(store: Store, s: Schedule, d: Decision, state: dict[str, Any],
           paused: Suspended, config: ConfigSet) -> dict[str, Any]:
    """What the firing hands off: the records to save, the run to send, the run to
    cancel. A suspended schedule's firings pass, unrun and unrecorded."""
    box: dict[str, Any] = {"records": []}
    if paused.holds(s.name):
        return box
    if d.missed and d.first_missed and d.last_missed:
        box["records"].append(final_record(
            s, config, "MISSED",
            f"{d.missed} firing(s) of schedule {s.name} missed, "
            f"{d.first_missed.isoformat()} to {d.last_missed.isoformat()}: beat was "
            "not running then, and they are later than the schedule's "
            "starting_deadline", d.last_missed)
            | {"missed_from": d.first_missed.isoformat(), "missed_count": d.missed,
               "missed_to": d.last_missed.isoformat()})  # the range, for machines
    if d.run is None:
        return box
    previous = state.get("last_run_id")
    active = store.run(previous) if previous and s.overlap != "allow" else None
    if active and active.state in ACTIVE:
        if s.overlap == "forbid":
            box["records"].append(final_record(
                s, config, "SKIPPED", f"previous run {previous} of schedule {s.name} is "
                f"still {active.state} (overlap: forbid)", d.run))
            return box
        box["cancel"] = previous  # overlap: replace
    run = pending(config, s.job, f"schedule {s.name}", s.limit, schedule=s.name,
                  scheduled_for=d.run.isoformat(), params=dict(s.params))
    box["records"].append(run)
    box["send"] = state["last_run_id"] = run["run_id"]
    return box


@dataclass
class Recent:
    """Not frozen: the records beat handed off in the last KEEP seconds. Redis replicates
    asynchronously, so a failover (or a restart from an AOF written every second) loses the
    writes of its last moments. When the store's server changes, each of these records that
    is gone is written again; a lost run ends FAILURE (it may have run on the former master,
    or never: it is not run again as it is) and is retried as its job's retries allow."""

    server: str | None = None
    handed: deque[tuple[float, str, list[dict[str, Any]]]] = field(default_factory=deque)

    def add(self, name: str, records: list[dict[str, Any]], now: float) -> None:
        """Remembers a schedule's hand-off, forgetting those older than KEEP seconds."""
        self.handed.append((now, name, records))
        while self.handed and now - self.handed[0][0] > KEEP:
            self.handed.popleft()

    def moved(self, store: Store) -> bool:
        """Whether the store's server changed since the last look."""
        server, self.server = self.server, store.server()
        return server is not None and server != self.server

    def restore(self, app: Celery, store: Store, config: ConfigSet) -> set[str]:
        """Writes again each remembered record the store lost: the schedules concerned."""
        names = set()
        for _at, name, records in self.handed:
            for r in records:
                if store.run(r["run_id"]) is not None:
                    continue
                names.add(name)
                store.save_run(RunRecord.from_json(r))
                if r.get("state") == RunState.PENDING:
                    bury(app, store, config, r["run_id"], "the store lost this run's record "
                         "in a Redis failover or restart (asynchronous replication): it may "
                         "have run on the former server, or never; it is not run again as "
                         "it is")
                log.warning("schedule %s: wrote again the %s record of run %s that the store "
                            "lost (its server changed)", name, r.get("state"), r["run_id"])
        return names
