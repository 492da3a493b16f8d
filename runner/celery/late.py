"""Late runs (deadlines): a run not finished by its deadline — its job's `deadline` after it
started, or its schedule's after the firing, whichever instant comes first — is marked late
in its record (`late`: that instant, ISO), counted (tally keys.LATE by job:
runner_runs_late_total) and announced once (event `late`: an item of the notifier's feed). It
goes on running: stopping it is `timeout`'s job.

The active beat's reaper calls Deadlines.tick every reaper.PERIOD seconds. With no deadline in
the configuration it reads nothing. Otherwise it reads the runs created since its last look
(the last LOOKBACK when it starts, or after it lost the store or beat's lock) and remembers
each active one a deadline applies to, with the earliest instant it can become late; it reads
a remembered run again only once that instant has come. Idle, a look is one empty range read
of the run index. Marking is once-only across processes: the count goes to whoever writes
keys.late(RUN_ID) first (put_new), the event's notifications are written once (its outbox
entry), and the record's `late` is written last (see Deadlines.mark).
"""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from runner.config.model import ConfigSet
from runner.runs import ACTIVE, RunRecord
from runner.store import Store, keys

LOOKBACK = 86400.0  # seconds of runs read when it starts watching (an older active run is not)
SLACK = 10.0        # a record saved up to this long after its creation time is still read
WATCH = 10_000      # the most runs one look reads
log = logging.getLogger("runner.late")


def due(config: ConfigSet, run: RunRecord) -> float | None:
    """When `run` becomes late (Unix time): the earlier of its job's deadline after its start
    and its schedule's after its firing; None when neither applies (a job's applies once the
    run started)."""
    times = []
    job = config.jobs.get(str(run.job))
    if job is not None and job.deadline and run.started:
        times.append(float(run.started) + job.deadline)
    schedule = config.schedules.get(str(run.schedule))
    if schedule is not None and schedule.deadline and run.scheduled_for:
        times.append(datetime.fromisoformat(run.scheduled_for).timestamp() + schedule.deadline)
    return min(times, default=None)


def next_look(config: ConfigSet, run: RunRecord, now: float) -> float | None:
    """The earliest instant active `run` can become late, seen at `now` (a job's deadline
    counts from a start that has not happened yet: `now` + deadline at the earliest); None
    when no deadline applies to it."""
    at = due(config, run)
    job = config.jobs.get(str(run.job))
    if job is not None and job.deadline and not run.started:
        at = min(math.inf if at is None else at, now + job.deadline)
    return at


def has_deadlines(config: ConfigSet) -> bool:
    """Whether any job or schedule has a deadline."""
    return any(j.deadline for j in config.jobs.values()) or any(
        s.deadline for s in config.schedules.values())


def iso(at: float) -> str:
    """The ISO text of a `late` instant (UTC, milliseconds)."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")


@dataclass
class Deadlines:
    """Not frozen: the runs it watches, by id, with when to read each again."""

    store: Store
    watched: dict[str, float] = field(default_factory=dict)
    since: float | None = None  # when it last read the new runs (None: start over)
    stamp: str | None = None  # the store's runs_stamp then
    owner: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def lost(self) -> None:
        """The store was away (or beat's lock lost): it reads the last LOOKBACK again."""
        self.watched.clear()
        self.since = self.stamp = None

    def tick(self, config: ConfigSet, now: float) -> list[str]:
        """One look at `now` (Unix time): the ids of the runs it marked late. The new runs
        are read only when the store's runs_stamp changed (embedded: one stat of runs/)."""
        if not has_deadlines(config):
            self.lost()
            return []
        stamp = self.store.runs_stamp()  # unchanged: no record was written since its look
        runs: list[RunRecord] = []
        if self.since is None or stamp is None or stamp != self.stamp:
            start = now - LOOKBACK if self.since is None else self.since - SLACK
            runs = self.store.runs_page(since=start, limit=WATCH, scan=WATCH)[0]
            self.since, self.stamp = now, stamp
        for run in runs:
            fresh = run.state in ACTIVE and run.late is None and run.run_id not in self.watched
            if fresh and (at := next_look(config, run, now)) is not None:
                self.watched[run.run_id] = at
        marked = []
        for run_id, at in list(self.watched.items()):
            if at > now:
                continue
            record = self.store.run(run_id)
            became = due(config, record) if record is not None else None
            if record is None or record.state not in ACTIVE or record.late is not None:
                del self.watched[run_id]
            elif became is not None and became <= now:
                del self.watched[run_id]
                if self.mark(record, became, now):
                    marked.append(run_id)
            elif (again := next_look(config, record, now)) is not None:
                self.watched[run_id] = again
            else:  # its deadline left the configuration
                del self.watched[run_id]
        return marked

    def mark(self, run: RunRecord, at: float, now: float) -> bool:
        """Marks `run` late as of `at`: whether this process claimed it (and counted it). In
        an order that a process dying at any point leaves for the next look to complete: the
        claim (keys.late, put_new: once), the count (by the claimer only), the announcement
        (the feed item: its outbox entry sends it once, however often it is added), and last
        the record's `late`, after which no look reads the run again. A run claimed but not
        marked in its record is completed by whoever looks, from the claim's instant."""
        mine = {"at": iso(at), "by": self.owner}
        claim = self.store.put_new(keys.late(run.run_id), mine)
        if claim == mine:
            self.store.tally(keys.LATE, {str(run.job): 1.0}, {})
        self.store.to_notify(keys.late(run.run_id), now)
        self.store.end_run(run.run_id, {"late": claim["at"]}, ACTIVE)
        if claim == mine:
            log.warning("run %s of %s is late: its deadline passed at %s; it goes on running",
                        run.run_id, run.job, claim["at"])
        return claim == mine
