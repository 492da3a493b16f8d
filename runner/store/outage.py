"""Riding out a store that is away: each long-running process keeps going, waits with a
backoff, and says once that it lost the store and once that it has it again."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

BACKOFF = (0.5, 5.0)  # seconds between tries while the store is away, doubling


@dataclass
class Outage:
    """Not frozen: it tracks one process's view of the store."""

    who: str
    log: logging.Logger
    clock: Callable[[], float] = time.monotonic
    since: float | None = None  # when the store was lost; None: it is there
    delay: float = BACKOFF[0]

    def lost(self, why: object) -> float:
        """The store failed: seconds to wait before the next try (logs the first time)."""
        if self.since is None:
            self.since = self.clock()
            self.log.warning("%s: lost the store (%s); retrying until it is back", self.who, why)
            self.delay = BACKOFF[0]
            return self.delay
        self.delay = min(BACKOFF[1], self.delay * 2)
        return self.delay

    def ok(self) -> None:
        """The store answered (logs once after an outage)."""
        if self.since is not None:
            self.log.warning("%s: the store is back after %.1fs", self.who,
                             self.clock() - self.since)
            self.since = None


def connection_error(e: BaseException) -> bool:
    """Is `e` a broker or Redis connection failure (kombu's, redis-py's, a socket's)?"""
    from kombu.exceptions import KombuError

    return isinstance(e, OSError | KombuError) or type(e).__module__.startswith("redis.")
