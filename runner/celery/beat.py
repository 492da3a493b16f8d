"""`runner beat`: fires the configuration's schedules, once each, from one active process.

Which firing of a schedule runs is pure (timetable.decide: the latest within its
starting_deadline, default GRACE; the others recorded MISSED in one record, never a burst). Cost
follows what is due: each schedule's next firing is computed once per firing and kept in a
heap (timetable.Timetable); beat sleeps until the earliest (at most MAX_SLEEP). Schedule states
are read in bulk when beat becomes active and kept in memory (the active beat is their only
writer); due firings are handed off CHUNK at a time, one round trip per step. A new revision
replans only the schedules whose definition changed.

The beat holding the store's lock fires; its lease is renewed by a thread (lease.py), so it is
held however long a batch takes, and a failed renewal stops the firing at once. A standby takes
over within LOCK_TTL. The write marking a firing handled holds what it hands off (an outbox,
handoff.py), which the beat taking over completes: no firing repeated or lost. The active beat
also runs the reaper and writes back the states a wiped store lost (generation.py). A store
that is away is waited for; SIGTERM stops beat at once, after at most the chunk it is handing
off. scheduler.py runs the same tick as Celery's beat service (`celery -A runner.app beat -S
runner.celery.scheduler:Scheduler`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import Celery

from runner.celery.handoff import Recent, complete, outbox
from runner.celery.lease import Lease
from runner.celery.reaper import Reaper
from runner.celery.tasks import cancel, send
from runner.config.model import ConfigSet, Schedule
from runner.desired import next_fires
from runner.errors import StoreUnavailable, UsageError
from runner.ops.lateness import lateness_of, observe_lateness
from runner.runs import RunRecord
from runner.store import Store, keys
from runner.store.entries import BeatStatus, Suspended, read_suspended, write_beat
from runner.store.generation import Generation
from runner.store.outage import Outage
from runner.system import System
from runner.timetable import GRACE, Decision, Timetable, decide, timing, window

__all__ = ["GRACE", "Beat", "Decision", "Stopped", "decide"]
LOCK_TTL = 5.0   # seconds; the standby takes over after this
MAX_SLEEP = 0.5  # seconds beat sleeps at most (a new revision, a stop, the lease)
CHUNK = 500      # firings handed off per round trip (a stop waits for at most one chunk)
GENERATION_EVERY = 2.0  # seconds between looks at the store's generation (wiped?)
log = logging.getLogger("runner.beat")


class Stopped(BaseException):
    """Raised by Beat.interrupt, from a signal handler: leave now (not an Exception, so
    nothing on the way catches it)."""


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _start(s: Schedule, state: dict[str, Any]) -> datetime:
    """Where the schedule's next decision starts: after its last handled firing, as its
    current jitter moves it (the same firing never runs again at a new instant), and after
    the moment its timing last changed."""
    starts = [_instant(state["since"])] if "since" in state else []
    if "last_fire" in state:
        moved = s.jitter_offset - int(state.get("offset", s.jitter_offset))
        starts.append(_instant(state["last_fire"]) + timedelta(seconds=moved))
    return max(starts)


class Beat:
    def __init__(self, system: System, app: Celery,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.system, self.app, self.clock = system, app, clock
        self.owner = f"{uuid.uuid4().hex[:8]}"
        self.store: Store = system.store
        self.lease = Lease(self.store, keys.BEAT, self.owner, LOCK_TTL)
        self.known: dict[str, dict[str, Any]] = {}  # each schedule's state (active only)
        self.after: dict[str, datetime] = {}  # where each schedule's next decision starts
        self.schedules: dict[str, Schedule] = {}  # the definitions planned
        self.table = Timetable()
        self.config: ConfigSet | None = None  # the configuration planned
        self.active = False  # holds the lock
        self.revision: str | None = None
        self.holding = False  # handing off firings: a stop waits for the end of it
        self.stop = threading.Event()  # run's: a pass ends at the next chunk once set
        self.running = False  # inside run(): only there may a signal raise Stopped
        self.reaper = Reaper(app, self.store)
        self.generation = Generation("beat", log)
        self.recent = Recent()  # hand-offs a failover may lose
        self.unfinished: set[str] = set()  # schedules whose outbox a store failure interrupted
        self.looked = -GENERATION_EVERY  # monotonic time of the last generation check

    def tick(self) -> bool:
        """One look at the clock: fires what is due; False while another beat holds the
        lock."""
        if time.monotonic() - self.looked >= GENERATION_EVERY:
            self.looked = time.monotonic()
            if self.generation.check(self.store):
                self.revision = None  # the store lost the beat entry too: write it again
                self._write_back()
            if self.recent.moved(self.store) and self.active and self.config is not None:
                lost = self.recent.restore(self.app, self.store, self.config)
                self._put({n: self.known[n] for n in lost if n in self.known})
        if not self.lease.holds():
            if self.active:
                self._standby()
            return False
        config = self.system.config()  # re-read at most every system.RELOAD seconds
        self.app.conf.runner_config = config  # what the router reads
        if not self.active:
            self._activate(config)
        elif config is not self.config:
            self._plan(config)
        if config.revision != self.revision:  # the schedules it fires, for status
            self.revision = config.revision
            write_beat(self.store, BeatStatus(self.owner, config.revision,
                                              tuple(sorted(config.schedules)), time.time()))
        if self.unfinished:
            self._finish(self.unfinished, config)
        self._fire_due(config)
        if not self.stop.is_set():
            self.holding = True  # a run buried is retried before a stop
            try:
                self.reaper.tick(config)
            finally:
                self.holding = False
        return True

    def idle(self) -> float:
        """Seconds until the next schedule is due (at most MAX_SLEEP)."""
        upcoming = self.table.next() if self.active else None
        if upcoming is None:
            return MAX_SLEEP
        return max(0.0, min(MAX_SLEEP, (upcoming - self.clock()).total_seconds()))

    def _activate(self, config: ConfigSet) -> None:
        """Start or takeover: every schedule state read in one go, every hand-off left half
        done completed, every schedule planned."""
        self.known = {k.removeprefix(keys.SCHEDULE): v
                      for k, v in self.store.entries(keys.SCHEDULE).items()}
        self._finish([n for n, st in self.known.items() if "outbox" in st], config)
        self.schedules, self.config = {}, None
        self.table.clear()
        self._plan(config)
        self.active = True

    def _standby(self) -> None:
        log.warning("beat: lost the lock; standing by")
        self.active = False
        self.known.clear()  # the next active beat's states are newer
        self.unfinished.clear()  # its outboxes, too
        self.schedules, self.config = {}, None
        self.after.clear()
        self.table.clear()
        self.reaper.lost()

    def _plan(self, config: ConfigSet) -> None:
        """Plans the schedules whose definition is new or changed since the last plan (all,
        the first time); forgets the removed ones. A new schedule starts from now (no firing
        from before it existed is run or recorded missed), and so does one whose instants
        moved (jitter, zone, cron): a firing handled before is not run again at its new
        instant (_start). That start is written with its state, for the beat that takes
        over."""
        now, old, moved = self.clock(), self.schedules, {}
        for name in old.keys() - config.schedules.keys():
            self.table.remove(name)
            self.after.pop(name, None)
        for name, s in config.schedules.items():
            previous = old.get(name)
            if previous is s or previous == s:
                continue
            state = self.known.get(name) or {}
            new = not ("last_fire" in state or "since" in state)
            if new or {timing(previous or s), state.get("timing", timing(s))} != {timing(s)}:
                # new: it owes nothing from before; its instants moved: it fires by the new
                # ones from now, and the latest due within its deadline before (the change
                # took a moment to reach beat), none recorded missed
                late = None if new else decide(s, now - timedelta(seconds=window(s)), now)
                since = late.run - timedelta(microseconds=1) if late and late.run else now
                state = moved[name] = {**state, "timing": timing(s), "since": since.isoformat()}
            self.after[name] = _start(s, state)
            fires = next_fires(s, self.after[name], 1)
            self.table.plan(name, fires[0] if fires else None)
        if moved:
            self._put(moved)
        self.schedules, self.config = dict(config.schedules), config

    def _fire_due(self, config: ConfigSet) -> None:
        """Fires what is due, a chunk at a time. What a stop, a lost lease or a store failure
        leaves unhandled is due again at the next tick."""
        now = self.clock()
        due = self.table.pop_due(now)
        if not due:
            return
        done = 0
        try:
            paused = read_suspended(self.store) or Suspended()
            for k in range(0, len(due), CHUNK):
                if self.stop.is_set() or self.lease.lapsed:
                    return
                self._fire(due[k:k + CHUNK], now, paused, config)
                done = k + CHUNK
        finally:
            for name, at in due[done:]:  # a handled one decides nothing new at `at`
                self.table.plan(name, at)

    def _fire(self, due: list[tuple[str, datetime]], now: datetime, paused: Suspended,
              config: ConfigSet) -> None:
        """Decides each due schedule; marks the firings handled with their outboxes (one
        write: if it fails, nothing is handled), then completes the outboxes."""
        handled: dict[str, dict[str, Any]] = {}
        decided: dict[str, Decision] = {}
        for name, _at in due:
            s = self.schedules[name]
            d = decide(s, self.after[name], now)
            if d is None:  # not due after all (a clock step back): look again then
                fires = next_fires(s, self.after[name], 1)
                self.table.plan(name, fires[0] if fires else None)
                continue
            decided[name] = d
            state = dict(self.known.get(name) or {})
            state.update(last_fire=d.last.isoformat(), timing=timing(s),
                         offset=s.jitter_offset)
            box = outbox(self.store, s, d, state, paused, config)
            if box["records"]:
                state["outbox"] = box
            handled[name] = state
        self.holding = True  # a stop waits for the end of this chunk's hand-off
        try:
            self._put(handled)  # before anything is queued: never twice
            for name, d in decided.items():
                self.after[name] = d.last
                self.table.plan(name, d.next)
            self._complete({n: st for n, st in handled.items() if "outbox" in st}, config)
        finally:
            self.holding = False

    def _complete(self, boxes: dict[str, dict[str, Any]], config: ConfigSet) -> None:
        """Saves the outboxes' records and sends their runs (one round trip each), then
        clears the outboxes (one write). Those a store failure interrupts are completed at
        the next tick (_finish)."""
        self.unfinished.update(boxes)
        records = [r for st in boxes.values() for r in st["outbox"]["records"]]
        self.store.save_runs([RunRecord.from_json(r) for r in records])
        for name, state in boxes.items():
            self.recent.add(name, state["outbox"]["records"], time.monotonic())
        queued = {st["outbox"].get("send") for st in boxes.values()}
        late = [(str(r.get("schedule")), lateness_of(r)) for r in records
                if r["run_id"] in queued]
        for name, state in boxes.items():
            self._hand_off(name, state["outbox"], config)
            del state["outbox"], self.known[name]["outbox"]  # done: _finish only writes it
        self._put(boxes)
        self.unfinished.difference_update(boxes)
        observe_lateness(self.store, [x for _, x in late if x is not None], time.time(),
                         {n: x for n, x in late if x is not None})

    def _finish(self, names: Iterable[str], config: ConfigSet) -> None:
        """Completes the outboxes of `names` left half done (by a beat that died, or by a
        store failure), each step only if not done yet."""
        for name in list(names):
            state = self.known.get(name) or {}
            if "outbox" in state:
                complete(self.app, self.store, name, state, config)
            self._put({name: state})
            self.unfinished.discard(name)

    def _hand_off(self, name: str, box: dict[str, Any], config: ConfigSet) -> None:
        if box.get("cancel"):
            with contextlib.suppress(UsageError):  # it ended meanwhile
                cancel(self.app, self.store, str(box["cancel"]),
                       f"schedule {name} (overlap: replace)")
        for record in box["records"]:
            if record["run_id"] == box.get("send"):
                send(self.app, config, RunRecord.from_json(record))
                log.info("schedule %s fired %s: run %s", name, record["scheduled_for"],
                         record["run_id"])
            else:
                log.info("schedule %s: %s", name, record["error"])

    def _put(self, states: dict[str, dict[str, Any]]) -> None:
        self.store.put_many({keys.schedule(n): st for n, st in states.items()})
        self.known.update((n, dict(st)) for n, st in states.items())

    def _write_back(self) -> None:
        """The store was wiped: the states this beat holds are written back, so no firing it
        handled runs again and none after is skipped unrecorded."""
        held = {n: st for n, st in self.known.items() if "last_fire" in st}
        if self.active and held:
            log.warning("beat: wrote back the state of %d schedule(s) the wiped store lost",
                        len(held))
            self._put(held)

    def interrupt(self) -> None:
        """For a SIGTERM handler: stop at once, whatever the pass is doing (a long catch-up,
        a store call), except in a hand-off, which ends first (a chunk: well under a second).
        Outside run() (a second signal while the interpreter shuts down) it only sets
        `stop`."""
        self.stop.set()
        if self.running and not self.holding:
            raise Stopped

    def run(self, stop: threading.Event) -> None:
        """Ticks until `stop`, sleeping until the next due instant; a store or broker that
        is away is waited for, with a backoff (said once when lost, once when back)."""
        outage, self.stop = Outage("beat", log), stop
        self.running = True
        self.lease.start()
        unwatch = self.system.watch(self.lease.changed)  # a --repo edit wakes it too
        try:
            while not stop.is_set():
                try:
                    self.tick()
                except StoreUnavailable as e:
                    self.reaper.lost()  # heartbeats stopped for everyone: not deaths
                    stop.wait(outage.lost(e))
                    continue
                outage.ok()
                if self.lease.changed.wait(self.idle()):  # woken early: the lease flipped,
                    self.lease.changed.clear()            # or a file of --repo changed
        finally:
            self.running = False
            self.lease.stop()
            if unwatch:
                unwatch()
