"""Noticing a wiped store: the store keeps a generation (kv `generation`, {id, created}),
written when absent. A process that saw one generation and later finds none, or another,
knows the store lost its data (Redis restarted with no persistence, FLUSHALL, a new empty
volume): it says so once in its log and records the wipe in the new generation, which
`runner status` and `/api/health` report for a day."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from runner.store import Store, keys

SHOWN = 86400.0  # seconds status and health keep saying the store was wiped


@dataclass
class Generation:
    """Not frozen: one process's view of the store's generation."""

    who: str
    log: logging.Logger
    seen: str | None = None

    def check(self, store: Store) -> bool:
        """Reads the generation (creating it when absent): whether the store was wiped since
        the last check (logged once, and recorded in the generation)."""
        now = time.time()
        fresh: dict[str, Any] = {"id": uuid.uuid4().hex, "created": now}
        wipe = {"previous": self.seen, "noticed": now, "by": self.who}
        if self.seen is not None:
            fresh["wiped"] = wipe
        current = store.put_new(keys.GENERATION, fresh)
        wiped = self.seen is not None and current.get("id") != self.seen
        if wiped:
            if "wiped" not in current:  # re-created by a process that had seen none
                store.put(keys.GENERATION, {**current, "wiped": wipe})
            self.log.error("%s: the store was wiped (generation %s is gone; Redis restarted "
                           "without persistence or was flushed): runs queued or running "
                           "before have no record", self.who, self.seen)
        self.seen = str(current.get("id"))
        return wiped


def wiped(generation: dict[str, Any] | None, now: float | None = None) -> str | None:
    """One sentence for status and health when the store was wiped in the last SHOWN
    seconds, else None."""
    wipe = (generation or {}).get("wiped")
    now = time.time() if now is None else now
    if not isinstance(wipe, dict) or now - float(wipe.get("noticed") or 0) > SHOWN:
        return None
    at = datetime.fromtimestamp(float(wipe["noticed"]), UTC).isoformat(timespec="seconds")
    return (f"the store was wiped (noticed by {wipe.get('by')} at {at}): runs queued or "
            "running before then have no record; beat recorded the firings since then as "
            "run or MISSED (see README, Failure behaviour)")
