"""Queue lengths over time for GET /api/stats' `queues`: the active beat's reaper samples every
configured queue's length every EVERY seconds (one process per store, always running where
runs are scheduled) into one store entry that keeps the last KEEP seconds: 360 points a queue
at most, whichever API process reads them."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from celery import Celery

from runner.celery.app import queue_length
from runner.errors import BrokerError
from runner.store import Store, keys

EVERY = 30.0  # seconds between two samples
KEEP = 3 * 3600.0  # seconds of samples kept
log = logging.getLogger("runner.beat")

Points = dict[str, list[list[float]]]


def appended(points: Mapping[str, list[list[float]]], sample: Mapping[str, int], now: float,
             keep: float = KEEP) -> Points:
    """`points` with `sample` (queue: length) added at `now`: samples older than `keep`
    seconds dropped, and queues not in `sample` (no longer configured)."""
    return {q: [p for p in points.get(q, []) if p[0] > now - keep] + [[round(now, 3), n]]
            for q, n in sorted(sample.items())}


@dataclass
class Sampler:
    """Not frozen: when it last sampled (by its monotonic clock)."""

    app: Celery
    store: Store
    every: float = EVERY
    clock: Callable[[], float] = time.monotonic
    last: float = -math.inf

    def tick(self, queues: list[str]) -> None:
        """Samples `queues` now unless it did less than `every` seconds ago; a broker away
        skips the sample (said in the log)."""
        now = self.clock()
        if now - self.last < self.every:
            return
        self.last = now
        try:
            sample = {q: queue_length(self.app, q) for q in queues}
        except BrokerError as e:
            log.warning("queue lengths: no sample: %s", e)
            return
        entry: dict[str, Any] = self.store.get(keys.QUEUE_LENGTHS) or {}
        self.store.put(keys.QUEUE_LENGTHS,
                       {"points": appended(entry.get("points") or {}, sample, time.time())})


def series(store: Store) -> Points:
    """Each queue's [[unix, length], ...] of the last KEEP seconds, oldest first."""
    entry = store.get(keys.QUEUE_LENGTHS) or {}
    points: Points = entry.get("points") or {}
    return points
