"""Beat's firing hand-off: the records a firing writes, and completing an outbox a beat left
when it died (each step only if not done yet)."""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import datetime
from typing import Any

from celery import Celery

from runner.config.model import ConfigSet, Schedule
from runner.errors import UsageError
from runner.execute import new_run_id
from runner.state import Store
from runner.tasks import cancel, send

log = logging.getLogger("runner.beat")


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
        current = store.run(r["run_id"])
        if current is None:
            store.save_run(r)
            current = r
        if r["run_id"] == box.get("send") and current.get("state") == "PENDING":
            send(app, config, r)
            log.info("schedule %s fired %s: run %s (completing a hand-off)", name,
                     r["scheduled_for"], r["run_id"])
