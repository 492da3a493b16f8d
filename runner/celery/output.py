"""A running run's output so far, for GET /api/runs/RUN_ID/output: the worker gives the engine
`attach` (each target's attempt as it begins), its timer calls `tick`, and `clear` deletes the
entries once the record is final (the record's output is what is shown then).

What it writes is each target's tail as the attempt keeps it, its last LIVE_CAP bytes a
stream (the final record keeps the whole RUNNER_OUTPUT_CAP), masked as it arrives (a Tail
holds back an end that may begin a secret), so no secret leaves the worker unmasked. Each
target has its own entry, keys.output(RUN_ID, TARGET), written only when its output or step
changed; keys.output(RUN_ID) names the targets. One store write a second per run at most,
none while nothing changed: at most LIVE_CAP x 2 per target going, a few milliseconds of
encoding, so it stays in the run's event loop.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runner.executor.attempt import Attempt
from runner.store import Store, keys

EVERY = 1.0  # seconds between two writes of a run's output at least
LIVE_CAP = 64 * 1024  # bytes of each stream's tail written while it runs


@dataclass
class LiveOutput:
    """Not frozen: the attempts of a run's targets going now, and what it wrote last."""

    store: Store
    run_id: str
    every: float = EVERY
    clock: Callable[[], float] = time.monotonic
    attempts: dict[str, Attempt] = field(default_factory=dict)
    marks: dict[str, Any] = field(default_factory=dict)  # per target: its mark written last
    last: float = -math.inf

    def attach(self, target: str, attempt: Attempt) -> None:
        self.attempts[target] = attempt

    def tick(self) -> None:
        """Writes the output of the targets whose output changed, unless it wrote less than
        `every` seconds ago."""
        now = self.clock()
        if now - self.last < self.every:
            return
        marks = {n: a.mark() for n, a in self.attempts.items()}
        changed = [n for n, mark in marks.items() if self.marks.get(n) != mark]
        if not changed:
            return
        entries: dict[str, dict[str, Any]] = {
            keys.output(self.run_id, n): self.attempts[n].live(LIVE_CAP) for n in changed}
        if not self.marks.keys() >= set(changed):  # a target began: the index names it
            entries[keys.output(self.run_id)] = {"targets": list(self.attempts)}
        self.store.put_many(entries)
        self.marks.update({n: marks[n] for n in changed})
        self.last = now

    def clear(self) -> None:
        """Deletes the entries (the run's record is final now), if it wrote some."""
        if self.marks:
            drop(self.store, self.run_id)
            self.marks = {}


def read(store: Store, run_id: str) -> dict[str, dict[str, Any]]:
    """Each target's output so far of run `run_id`, by target ({} when none was written)."""
    names = (store.get(keys.output(run_id)) or {}).get("targets") or ()
    found = {n: store.get(keys.output(run_id, n)) for n in names}
    return {n: entry for n, entry in found.items() if entry is not None}


def drop(store: Store, run_id: str) -> None:
    """Deletes the output entries of run `run_id` (those its index names, then the index)."""
    for name in (store.get(keys.output(run_id)) or {}).get("targets") or ():
        store.delete(keys.output(run_id, name))
    store.delete(keys.output(run_id))
