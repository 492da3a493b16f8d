"""Suspending and resuming schedules without a commit: the store's `suspended` entry,
changed under a store lock so that concurrent suspends and resumes lose none."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from runner.config.model import ConfigSet
from runner.config.schema import did_you_mean
from runner.errors import StoreUnavailable, UsageError
from runner.store import Store, keys
from runner.store.entries import Mark, Suspended, read_suspended, write_suspended

LEASE = 10.0  # seconds the lock is held at most (a writer that died lets go after this)
PATIENCE = 15.0  # seconds a writer waits for the lock: longer than a dead holder's lease
_POLL = 0.01  # seconds between tries to take it (a change holds it for two store calls)
_RELEASE = 0.001  # the lease a writer renews its lock to when done: gone at once


@dataclass(frozen=True)
class Suspension:
    """The `suspended` entry after a change: `all` and `schedules` (name: who, when)."""

    entry: dict[str, Any]


def suspend(store: Store, by: str, schedule: str | None = None,
            config: ConfigSet | None = None) -> Suspension:
    """Pauses firing of `schedule` (one of `config`'s), or of every schedule when None."""
    if schedule is not None and config is not None and schedule not in config.schedules:
        raise UsageError(f"there is no schedule {schedule!r}"
                         f"{did_you_mean(schedule, config.schedules)}")
    mark = Mark(by, time.time())

    def change(paused: Suspended) -> Suspended:
        if schedule is None:
            return replace(paused, all=mark)
        return replace(paused, schedules={**paused.schedules, schedule: mark})
    return Suspension(_change(store, change).to_json())


def resume(store: Store, schedule: str | None = None) -> Suspension:
    """Lets `schedule` fire again, or every schedule (forgetting single ones) when None."""
    def change(paused: Suspended) -> Suspended:
        if schedule is None:
            return replace(paused, all=None, schedules={})
        return replace(paused, schedules={n: m for n, m in paused.schedules.items()
                                          if n != schedule})
    return Suspension(_change(store, change).to_json())


def _change(store: Store, change: Callable[[Suspended], Suspended]) -> Suspended:
    """The entry, read, changed and written while holding its lock."""
    owner = uuid.uuid4().hex
    give_up = time.monotonic() + PATIENCE
    while not store.lock(keys.SUSPENDED, owner, LEASE):
        if time.monotonic() > give_up:
            raise StoreUnavailable(f"the {keys.SUSPENDED!r} entry stayed locked by another "
                                   f"suspend or resume for {PATIENCE:.0f}s; try again")
        time.sleep(_POLL)
    try:
        paused = change(read_suspended(store) or Suspended())
        write_suspended(store, paused)
    finally:
        store.lock(keys.SUSPENDED, owner, _RELEASE)
    return paused
