"""`runner beat`: fires the configuration's schedules, once each, from one active process.

The decision for one schedule is pure (`decide`): given the last firing it handled and the
time now, which firing runs and how many were missed — with the same next-fire function as
`runner plan` (cron in the schedule's own zone, Vixie DST rule; every; at). A firing late by
more than the schedule's starting_deadline (default GRACE) is recorded MISSED, never run, and
a long outage never causes a burst: at most the latest firing runs.

Several `runner beat` processes may run: the one holding the store's lock (a short TTL,
renewed every tick) fires; a standby takes over within LOCK_TTL seconds of the active one's
death. Each schedule's last handled firing is kept in the store, so a takeover neither
repeats nor skips a firing; the write that marks a firing handled also holds what it hands
off (an outbox: records to save, the run to send), which the next tick completes if beat died
in between. The active beat also runs the reaper (reaper.py), and writes back the schedule
states a wiped store lost (generation.py says it was wiped).

A store or broker that is away is waited for (said once when lost, once when back); SIGTERM
stops beat at once, even mid-pass, after at most the firing it is handing off.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from celery import Celery

from runner.celery_app import System
from runner.config.model import ConfigSet, Schedule
from runner.desired import next_fires
from runner.errors import StoreUnavailable, UsageError
from runner.execute import new_run_id
from runner.generation import Generation
from runner.outage import Outage
from runner.reaper import Reaper
from runner.state import ACTIVE, Store
from runner.tasks import cancel, pending, send

SUSPENDED = "suspended"  # store key: {"all": {...} | absent, "schedules": {NAME: {...}}}
GRACE = 30.0     # seconds a firing may be late without a starting_deadline
LOCK_TTL = 5.0   # seconds; the standby takes over after this
TICK = 0.25      # seconds between looks at the clock
GENERATION_EVERY = 2.0  # seconds between looks at the store's generation (wiped?)
log = logging.getLogger("runner.beat")


class Stopped(BaseException):
    """Raised by Beat.interrupt, from a signal handler: leave now (not an Exception, so
    nothing on the way catches it)."""


@dataclass(frozen=True)
class Decision:
    run: datetime | None     # the firing to run now, if any
    missed: int              # firings not run
    first_missed: datetime | None
    last_missed: datetime | None
    last: datetime           # the newest firing handled (the next decision starts after it)


def decide(s: Schedule, after: datetime, now: datetime) -> Decision | None:
    """Firings of `s` in (after, now]; None when there is none."""
    count, first, previous, latest = 0, None, None, None
    cursor = after
    while True:
        batch = [f for f in next_fires(s, cursor, 256) if f <= now]
        if batch:
            count += len(batch)
            first = first or batch[0]
            previous = batch[-2] if len(batch) > 1 else latest
            latest = batch[-1]
            cursor = latest
        if len(batch) < 256:
            break
    if latest is None:
        return None
    window = s.starting_deadline if s.starting_deadline is not None else GRACE
    if (now - latest).total_seconds() <= window:
        return Decision(latest, count - 1, first if count > 1 else None, previous, latest)
    return Decision(None, count, first, latest, latest)


class Beat:
    def __init__(self, system: System, app: Celery,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.system, self.app, self.clock = system, app, clock
        self.owner = f"{uuid.uuid4().hex[:8]}"
        self.store: Store = system.store
        self.first_seen: dict[str, datetime] = {}  # schedules with no state yet
        self.known: dict[str, dict[str, Any]] = {}  # each schedule's state, as last seen
        self.active = False  # holds the lock
        self.revision: str | None = None
        self.holding = False  # between marking a firing handled and queueing its run
        self.stop = threading.Event()  # run's: a pass ends at the next schedule once set
        self.running = False  # inside run(): only there may a signal raise Stopped
        self.reaper = Reaper(app, self.store)
        self.generation = Generation("beat", log)
        self.looked = -GENERATION_EVERY  # monotonic time of the last generation check

    def tick(self) -> bool:
        """One look at the clock; False while another beat holds the lock."""
        if time.monotonic() - self.looked >= GENERATION_EVERY:
            self.looked = time.monotonic()
            if self.generation.check(self.store):
                self.revision = None  # the store lost the beat entry too: write it again
        if not self.store.lock("beat", self.owner, LOCK_TTL):
            if self.active:
                self.active = False
                self.known.clear()  # the next active beat's states are newer
                self.reaper.lost()
            return False
        config = self.system.config()  # re-read at most every celery_app.RELOAD seconds
        self.app.conf.runner_config = config  # what the router reads
        if not self.active:  # start or takeover: finish every hand-off left half done
            for key, state in self.store.entries("schedule:").items():
                if "outbox" in state:
                    self._complete(key.removeprefix("schedule:"), state, config)
            self.active = True
        if config.revision != self.revision:  # the schedules it fires, for status
            self.revision = config.revision
            self.store.put("beat", {"owner": self.owner, "revision": config.revision,
                                    "schedules": sorted(config.schedules),
                                    "loaded_at": time.time()})
        now = self.clock()
        paused = self.store.get(SUSPENDED) or {}
        for s in config.schedules.values():
            if self.stop.is_set():
                break
            state = self._state(s.name)
            self.known[s.name] = dict(state)
            if "outbox" in state:
                self._complete(s.name, state, config)
            # a schedule never handled starts from when this beat first saw it: no firing
            # from before it existed is run or recorded missed
            after = (datetime.fromisoformat(state["last_fire"]) if "last_fire" in state
                     else self.first_seen.setdefault(s.name, now))
            d = decide(s, after, now)
            if d is None:
                continue
            state["last_fire"] = d.last.isoformat()
            self.holding = True  # a stop waits for the end of this schedule's hand-off
            try:
                self._handle(s, d, state, paused, config)
            finally:
                self.holding = False
        if not self.stop.is_set():
            self.holding = True  # a run buried is retried before a stop
            try:
                self.reaper.tick(config)
            finally:
                self.holding = False
        return True

    def _state(self, name: str) -> dict[str, Any]:
        """The schedule's state in the store; or, when the store lost it or holds an older
        one (wiped, or restarted from an older snapshot), the one this beat holds, written
        back: no firing it handled runs again, none after is skipped unrecorded."""
        found = self.store.get(f"schedule:{name}") or {}
        held = self.known.get(name) or {}
        if "last_fire" in held and ("last_fire" not in found or datetime.fromisoformat(
                held["last_fire"]) > datetime.fromisoformat(found["last_fire"])):
            log.warning("schedule %s: the store lost its state (last firing %s); beat wrote "
                        "back the one it holds (last firing %s)", name,
                        found.get("last_fire"), held.get("last_fire"))
            found = dict(held)
            self._put(name, found)
        return found

    def _put(self, name: str, state: dict[str, Any]) -> None:
        self.store.put(f"schedule:{name}", state)
        self.known[name] = dict(state)

    def _handle(self, s: Schedule, d: Decision, state: dict[str, Any],
                paused: dict[str, Any], config: ConfigSet) -> None:
        """Marks the firing handled and, in the same write, what it hands off (an outbox:
        the records to save, the run to send, the run to cancel); then completes that. A
        beat that dies in between leaves the outbox, which the next tick completes."""
        records: list[dict[str, Any]] = []
        box: dict[str, Any] = {"records": records}
        if not (paused.get("all") or s.name in paused.get("schedules", {})):
            if d.missed and d.first_missed and d.last_missed:  # suspended: they pass, unrun
                records.append(self._record(
                    s, config, "MISSED",
                    f"{d.missed} firing(s) of schedule {s.name} missed, "
                    f"{d.first_missed.isoformat()} to {d.last_missed.isoformat()}: beat was "
                    "not running then, and they are later than the schedule's "
                    "starting_deadline", d.last_missed)
                    | {"missed_from": d.first_missed.isoformat(), "missed_count": d.missed,
                       "missed_to": d.last_missed.isoformat()})  # the range, for machines
            if d.run is not None:
                self._fire(s, state, d.run, config, box)
        if records:
            state["outbox"] = box
        self._put(s.name, state)  # before anything is queued: never twice
        if records:
            self._complete(s.name, state, config)

    def _fire(self, s: Schedule, state: dict[str, Any], at: datetime, config: ConfigSet,
              box: dict[str, Any]) -> None:
        previous = state.get("last_run_id")
        active = self.store.run(previous) if previous else None
        if active and active.get("state") in ACTIVE:
            if s.overlap == "forbid":
                box["records"].append(self._record(
                    s, config, "SKIPPED", f"previous run {previous} of schedule {s.name} is "
                    f"still {active['state']} (overlap: forbid)", at))
                return
            if s.overlap == "replace":
                box["cancel"] = previous
        record = pending(config, s.job, f"schedule {s.name}", s.limit, schedule=s.name,
                         scheduled_for=at.isoformat())
        box["records"].append(record)
        box["send"] = state["last_run_id"] = record["run_id"]

    def _complete(self, name: str, state: dict[str, Any], config: ConfigSet) -> None:
        """Does what the schedule's outbox says, each step only if not done yet: its
        records saved, the run it replaces cancelled, its run's message sent (again, while
        the run is PENDING: a duplicate runs nothing); then clears it."""
        box = state["outbox"]
        if box.get("cancel"):
            with contextlib.suppress(UsageError):  # it ended meanwhile
                cancel(self.app, self.store, str(box["cancel"]),
                       f"schedule {name} (overlap: replace)")
        for record in box.get("records", []):
            current = self.store.run(record["run_id"])
            if current is None:
                self.store.save_run(record)
                current = record
                if record["state"] != "PENDING":
                    log.info("schedule %s: %s", name, record["error"])
            if record["run_id"] == box.get("send") and current.get("state") == "PENDING":
                send(self.app, config, record)
                log.info("schedule %s fired %s: run %s", name, record["scheduled_for"],
                         record["run_id"])
        del state["outbox"]
        self._put(name, state)

    def _record(self, s: Schedule, config: ConfigSet, state: str, why: str,
                at: datetime) -> dict[str, Any]:
        now = time.time()
        return {"run_id": new_run_id(), "job": s.job, "trigger": f"schedule {s.name}",
                "schedule": s.name, "state": state, "created": now, "finished": now,
                "error": why, "scheduled_for": at.isoformat(), "revision": config.revision}

    def interrupt(self) -> None:
        """For a SIGTERM handler: stop at once, whatever the pass is doing (a long catch-up,
        a store call), except in a firing's hand-off, which ends first (a few ms). Outside
        run() (a second signal while the interpreter shuts down) it only sets `stop`."""
        self.stop.set()
        if self.running and not self.holding:
            raise Stopped

    def run(self, stop: threading.Event) -> None:
        """Ticks until `stop`; a store or broker that is away is waited for, with a
        backoff (said once when lost, once when back)."""
        outage, self.stop = Outage("beat", log), stop
        self.running = True
        try:
            while not stop.is_set():
                try:
                    self.tick()
                except StoreUnavailable as e:
                    self.reaper.lost()  # heartbeats stopped for everyone: not deaths
                    stop.wait(outage.lost(e))
                    continue
                outage.ok()
                stop.wait(TICK)
        finally:
            self.running = False
