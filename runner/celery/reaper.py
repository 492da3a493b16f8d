"""The reaper, run by the active beat: records that no process will ever move end with the
reason.

- A run STARTED (or WAITING for a slot) by a worker that stopped heart-beating (its
  `worker:HOST` entry, written every worker.HEARTBEAT seconds, unchanged for DEAD seconds)
  ends FAILURE "worker X died during the run" and is retried per its job's `retries`
  (tasks.bury); a workflow run, which no process holds, is put (back) on the index that
  beat advances instead. Staleness is the reaper's own observation: how long, by its
  monotonic clock, it has seen the same heartbeat value — and that observation starts
  again after the reaper could not reach the store or did not look (a Redis outage stops
  every heartbeat; nobody is buried for it).
  Runs are looked up only for a dead worker, once.
- A run PENDING for more than RESEND seconds that no worker has taken (its message may never
  have been sent) gets its message sent again, once: a duplicate message runs nothing.
- A run past its deadline is marked late and announced, once (late.py): the reaper already
  looks every PERIOD seconds, in one process per store (beat's lock), on Redis and embedded.
- Every 30 s, each queue's length is sampled for GET /api/stats (lengths.py).

`runner run` processes (`cli-PID@HOST`) do not heart-beat: tasks.sweep_orphans ends theirs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from celery import Celery

from runner.celery.coordinate import follow, index
from runner.celery.late import Deadlines
from runner.celery.lengths import Sampler
from runner.celery.tasks import bury, send
from runner.config.model import ConfigSet
from runner.runs import BEGUN, RunState
from runner.store import Store
from runner.store.entries import read_workers, write_worker

PERIOD = 2.0    # seconds between two looks at the workers
DEAD = 10.0     # seconds a heartbeat may stand still before its worker counts as dead
RESEND = 60.0   # seconds a run may stay PENDING, unreceived, before its message is resent
WINDOW = 3600.0  # PENDING runs created longer ago than this are not looked at again
SCAN = 200_000  # the most run records one look for a dead worker's runs reads
log = logging.getLogger("runner.reaper")


@dataclass
class Reaper:
    """Not frozen: the heartbeats it has seen, per worker hostname."""

    app: Celery
    store: Store
    clock: Callable[[], float] = time.monotonic
    seen: dict[str, tuple[Any, float]] = field(default_factory=dict)  # (heartbeat, since)
    last: float | None = None  # when it last looked
    checked: float | None = None  # when it last looked at PENDING runs
    deadlines: Deadlines = field(init=False)
    lengths: Sampler = field(init=False)

    def __post_init__(self) -> None:
        self.deadlines = Deadlines(self.store)
        self.lengths = Sampler(self.app, self.store)

    def lost(self) -> None:
        """The store was away (or beat's lock lost): silence is measured afresh."""
        self.seen.clear()
        self.last = None
        self.deadlines.lost()

    def tick(self, config: ConfigSet) -> None:
        now = self.clock()
        if self.last is not None and now - self.last < PERIOD:
            return
        if self.last is None or now - self.last > 3 * PERIOD:  # it did not look meanwhile
            self.seen.clear()
        self.last = now
        self.workers(config, now)
        follow(self.app, self.store, config)  # resumes, times out, follows buried children
        self.deadlines.tick(config, time.time())
        self.lengths.tick(sorted(config.queues))
        if self.checked is None:
            self.checked = now
        elif now - self.checked >= RESEND:
            self.checked = now
            self.pending(config)

    def workers(self, config: ConfigSet, now: float) -> list[str]:
        """Buries the runs of workers whose heartbeat stood still for DEAD seconds: the ids
        of the runs buried."""
        entries = read_workers(self.store)
        dead = []
        for host, entry in entries.items():
            if entry.reaped or host.startswith("cli-"):
                continue
            beat = entry.heartbeat
            if host not in self.seen or self.seen[host][0] != beat:
                self.seen[host] = (beat, now)
            elif now - self.seen[host][1] >= DEAD:
                dead.append(host)
        for host in set(self.seen) - set(entries):
            del self.seen[host]
        if not dead:
            return []
        # WAITING first: a run of a worker still alive that moves on is found under STARTED
        started = list({run.run_id: run for state in BEGUN for run in
                        self.store.runs_page(state=state, limit=10_000, scan=SCAN)[0]}.values())
        buried = []
        for host in dead:
            entry = entries[host]
            last = datetime.fromtimestamp(float(entry.heartbeat or 0), UTC)
            why = (f"worker {host} died during the run (last heartbeat "
                   f"{last.isoformat(timespec='seconds')})")
            for run in started:
                if run.worker == host and run.workflow is not None:
                    index(self.store, run.run_id)  # it died before indexing it, maybe
                elif run.worker == host:
                    retry = bury(self.app, self.store, config, run.run_id, why)
                    log.warning("run %s: %s%s", run.run_id, why,
                                f"; retried as run {retry}" if retry else "")
                    buried.append(run.run_id)
            write_worker(self.store, host, replace(entry, reaped=time.time()))
            del self.seen[host]
        return buried

    def pending(self, config: ConfigSet) -> list[str]:
        """Sends again, once, the message of each run PENDING for RESEND seconds and never
        received: the ids."""
        now = time.time()
        runs, _ = self.store.runs_page(state=RunState.PENDING, limit=1000, since=now - WINDOW)
        again = []
        for run in runs:
            if float(run.created or now) > now - RESEND or run.received:
                continue
            record = self.store.run(run.run_id)
            if record is None or record.resent or record.state != RunState.PENDING:
                continue
            send(self.app, config, record)
            self.store.end_run(run.run_id, {
                "resent": now, "note": f"message sent again by the reaper: no worker took "
                                       f"it within {RESEND:.0f}s (a duplicate runs nothing)"},
                (RunState.PENDING,))
            log.warning("run %s: PENDING for %.0fs, not received: message sent again",
                        run.run_id, now - float(run.created or now))
            again.append(run.run_id)
        return again
