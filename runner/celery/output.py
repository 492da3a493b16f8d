"""A running run's output so far, for GET /api/runs/RUN_ID/output: the worker gives the engine
`attach` (each target's attempt as it begins), its timer calls `tick`, and `clear` deletes the
entry once the record is final (the record's output is what is shown then).

What it writes is each target's tail as the attempt keeps it: capped like the final output and
masked as it arrives (a Tail holds back an end that may begin a secret), so no secret leaves
the worker unmasked. One store write a second per run at most, none while nothing changed.
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


@dataclass
class LiveOutput:
    """Not frozen: the attempts of a run's targets going now, and what it wrote last."""

    store: Store
    run_id: str
    every: float = EVERY
    clock: Callable[[], float] = time.monotonic
    attempts: dict[str, Attempt] = field(default_factory=dict)
    marks: dict[str, Any] = field(default_factory=dict)
    last: float = -math.inf

    def attach(self, target: str, attempt: Attempt) -> None:
        self.attempts[target] = attempt

    def tick(self) -> None:
        """Writes the output so far, unless it wrote less than `every` seconds ago or
        nothing changed since."""
        now = self.clock()
        if now - self.last < self.every:
            return
        marks = {n: a.mark() for n, a in self.attempts.items()}
        if marks == self.marks:
            return
        self.store.put(keys.output(self.run_id),
                       {"targets": {n: a.live() for n, a in self.attempts.items()}})
        self.marks, self.last = marks, now

    def clear(self) -> None:
        """Deletes the entry (the run's record is final now), if it wrote one."""
        if self.marks:
            self.store.delete(keys.output(self.run_id))
            self.marks = {}
