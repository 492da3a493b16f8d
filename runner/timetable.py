"""Beat's pure core: which firing of a schedule runs now (`decide`), and when each schedule is
next due (`Timetable`, a heap keyed by that instant in UTC).

A schedule's next firing is computed once per firing (decide returns it with the decision),
so what beat does follows what is due, not how many schedules exist. The next-fire function is
`runner plan`'s (cron in the schedule's own zone, Vixie DST rule; every; at; jitter).
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime

from runner.config.model import Schedule
from runner.desired import next_fires

GRACE = 30.0  # seconds a firing may be late without a starting_deadline
WALK = 256    # firings looked at per step when beat was away (the missed ones are counted)


@dataclass(frozen=True)
class Decision:
    """What a schedule does at a tick: the firing to run, if any, and the firings missed."""

    run: datetime | None     # the firing to run now, if any
    missed: int              # firings not run
    first_missed: datetime | None
    last_missed: datetime | None
    last: datetime           # the newest firing handled (the next decision starts after it)
    next: datetime | None = None  # the firing after `last` (None: there is none)


def decide(s: Schedule, after: datetime, now: datetime) -> Decision | None:
    """Firings of `s` in (after, now]; None when there is none. The latest runs if it is
    within the schedule's starting_deadline (default GRACE), the others are missed: never a
    burst."""
    count, first, previous, latest, upcoming = 0, None, None, None, None
    cursor, size = after, 2  # on time: the due firing and the next one
    while True:
        fires = next_fires(s, cursor, size)
        batch = [f for f in fires if f <= now]
        if batch:
            count += len(batch)
            first = first or batch[0]
            previous = batch[-2] if len(batch) > 1 else latest
            latest = batch[-1]
            cursor = latest
        if len(batch) < len(fires) or len(fires) < size:
            upcoming = fires[len(batch)] if len(batch) < len(fires) else None
            break
        size = WALK  # beat was away: walk the missed ones in batches
    if latest is None:
        return None
    if (now - latest).total_seconds() <= window(s):
        return Decision(latest, count - 1, first if count > 1 else None, previous, latest,
                        upcoming)
    return Decision(None, count, first, latest, latest, upcoming)


def window(s: Schedule) -> float:
    """Seconds a firing may be late and still run."""
    return s.starting_deadline if s.starting_deadline is not None else GRACE


def timing(s: Schedule) -> str:
    """What decides a schedule's instants: a firing handled under another timing is not the
    same firing under this one (a jitter or zone change moves it)."""
    return f"{s.hashed_cron}|{s.every}|{s.at}|{s.timezone}|{s.jitter_offset}"


@dataclass
class Timetable:
    """Not frozen: each schedule's next due instant, in a heap. Planning a schedule again
    leaves its old heap entry behind, ignored (its version is not the current one)."""

    heap: list[tuple[datetime, int, str]] = field(default_factory=list)
    due: dict[str, tuple[datetime, int]] = field(default_factory=dict)  # name: (at, version)
    versions: itertools.count[int] = field(default_factory=itertools.count)

    def plan(self, name: str, at: datetime | None) -> None:
        """`name` is next due at `at` (None: never again)."""
        if at is None:
            self.due.pop(name, None)
            return
        entry = (at.astimezone(UTC), next(self.versions))
        self.due[name] = entry
        heapq.heappush(self.heap, (*entry, name))
        if len(self.heap) > 2 * len(self.due) + 1024:  # mostly stale: rebuild
            self.heap = [(at, v, n) for n, (at, v) in self.due.items()]
            heapq.heapify(self.heap)

    def remove(self, name: str) -> None:
        self.due.pop(name, None)

    def pop_due(self, now: datetime) -> list[tuple[str, datetime]]:
        """The schedules due at `now` (earliest first), taken off the table."""
        out = []
        while self.heap and self.heap[0][0] <= now:
            at, version, name = heapq.heappop(self.heap)
            if self.due.get(name, (None, None))[1] == version:
                del self.due[name]
                out.append((name, at))
        return out

    def next(self) -> datetime | None:
        """The earliest instant a schedule is due."""
        while self.heap and self.due.get(self.heap[0][2], (None, None))[1] != self.heap[0][1]:
            heapq.heappop(self.heap)
        return self.heap[0][0] if self.heap else None

    def clear(self) -> None:
        self.heap.clear()
        self.due.clear()
