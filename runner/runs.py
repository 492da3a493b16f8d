"""The states of a run, and the groups of them the store, beat, the worker and the front-ends
ask about: one definition (the store's Lua scripts and the dashboard take theirs from here)."""

from __future__ import annotations

import secrets
import time
from enum import StrEnum


class RunState(StrEnum):
    """Where a run is; equal to (and stored as) its name."""

    PENDING = "PENDING"    # recorded and queued
    RECEIVED = "RECEIVED"  # a worker took its message
    STARTED = "STARTED"    # a worker runs it
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    REVOKED = "REVOKED"    # cancelled
    SKIPPED = "SKIPPED"    # beat did not start it: the previous run of its schedule is active
    MISSED = "MISSED"      # beat did not start it: its firing was too late


ACTIVE = (RunState.PENDING, RunState.RECEIVED, RunState.STARTED)
FINAL = (RunState.SUCCESS, RunState.FAILURE, RunState.REVOKED, RunState.SKIPPED,
         RunState.MISSED)
ENDED = (RunState.SUCCESS, RunState.FAILURE, RunState.REVOKED)  # what a worker never runs again


def new_run_id(now: float | None = None) -> str:
    """Sortable by start time: milliseconds in hex, then 32 random bits."""
    millis = int((time.time() if now is None else now) * 1000)
    return f"{millis:012x}-{secrets.token_hex(4)}"
