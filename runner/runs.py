"""The states of a run, and the groups of them the store, beat, the worker and the front-ends
ask about: one definition (the store's Lua scripts and the dashboard take theirs from here);
and a run's record, RunRecord, as the store hands it out."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any


class RunState(StrEnum):
    """Where a run is; equal to (and stored as) its name."""

    PENDING = "PENDING"    # recorded and queued
    RECEIVED = "RECEIVED"  # a worker took its message
    WAITING = "WAITING"    # a worker took it and waits for a slot (`waiting`), no target running
    STARTED = "STARTED"    # a worker runs it
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    REVOKED = "REVOKED"    # cancelled
    SKIPPED = "SKIPPED"    # beat did not start it: the previous run of its schedule is active
    MISSED = "MISSED"      # beat did not start it: its firing was too late


ACTIVE = (RunState.PENDING, RunState.RECEIVED, RunState.WAITING, RunState.STARTED)
BEGUN = (RunState.WAITING, RunState.STARTED)  # a worker (or `runner run`) began it and holds it
FINAL = (RunState.SUCCESS, RunState.FAILURE, RunState.REVOKED, RunState.SKIPPED,
         RunState.MISSED)
ENDED = (RunState.SUCCESS, RunState.FAILURE, RunState.REVOKED)  # what a worker never runs again


@dataclass(frozen=True)
class RunRecord:
    """A run's record, as the store holds it. Each writer sets some fields (the enqueuer
    PENDING with queue, targets and limit; the worker's start and end; beat's MISSED and
    SKIPPED; `runner run`'s STARTED; the reaper's resend); a field never set is None, and
    absent from to_json. Times are Unix seconds; lists of the JSON are tuples here. Read
    it by attribute (record.state); to_json() is the JSON object, for the store, the API
    and reports; a field of another version is in `extra`. Equal records have equal
    fields (the order they were written in aside)."""

    run_id: str                       # new_run_id(): sortable by creation time
    job: str | None = None            # the job's name
    state: RunState | None = None     # where it is (None: a state of another version)
    trigger: str | None = None        # "cli", "api", "schedule NAME", "retry-of RUN_ID", ...
    revision: str | None = None       # the configuration's, as queued, then as it ran
    queue: str | None = None          # the job's queue when it was queued
    targets: tuple[str, ...] | None = None  # the targets chosen when it was queued
    limit: str | None = None          # the target pattern asked for (None: every target)
    created: float | None = None      # when it was recorded (queued, or fired by beat)
    received: float | None = None     # a worker took its message (kept from the first time)
    started: float | None = None      # its targets began
    finished: float | None = None     # it became final
    worker: str | None = None         # the Celery worker, or cli-PID@HOST for `runner run`
    deliveries: int | None = None     # deliveries of its message that started it
    error: str | None = None          # why it failed, was cancelled, skipped or missed
    result: dict[str, Any] | None = None  # RunResult.as_dict, downloads named by sha256
    retry_of: str | None = None       # the run it retries
    attempt: int | None = None        # its place along the retry_of chain (None: 1)
    schedule: str | None = None       # the schedule that fired it
    scheduled_for: str | None = None  # the firing's ISO time
    missed_from: str | None = None    # MISSED: the first firing missed
    missed_to: str | None = None      # MISSED: the last firing missed
    missed_count: int | None = None   # MISSED: how many firings were missed
    note: str | None = None           # a redelivery or a resend by the reaper, said plainly
    resent: float | None = None       # when the reaper sent its message again
    actions: tuple[dict[str, Any], ...] | None = None  # who asked for what, via what
    workflow: dict[str, Any] | None = None  # a workflow run: WorkflowRun.to_json(), its nodes
    parent: str | None = None         # a child run: the workflow run that started it
    node: str | None = None           # ... for this node of it
    retried_as: str | None = None     # buried with retries left: the run that retries it
    # each try of a notification of its end (notify/): {channel, event, at, status, error}
    notifications: tuple[dict[str, Any], ...] | None = None
    params: dict[str, Any] | None = None  # the job's params: the values given, with defaults
    # the ISO time its deadline passed while it was active (celery/late.py; set once, by an
    # update, so the worker's final write keeps it): it was late, and `late` was announced
    late: str | None = None
    waiting: tuple[str, ...] | None = None  # the limits it waits for a slot of (WAITING, or
    # STARTED with another target running)
    extra: Mapping[str, Any] = field(default_factory=dict)  # fields of other versions, kept
    # the fields set, in the order they were written (to_json gives them back so)
    order: tuple[str, ...] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.order is None:  # built in code: the fields that are set, then extra's
            set_ = tuple(n for n in _FIELDS if n == "run_id" or getattr(self, n) is not None)
            object.__setattr__(self, "order", (*set_, *self.extra))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunRecord:
        """The record of a JSON object as the store holds it; a field this version does not
        know, or a value of the wrong kind, is kept in `extra` (to_json gives it back)."""
        known: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for k, v in data.items():
            if k not in _NAMES:
                extra[k] = v
            elif v is None:
                known[k] = v
            elif k in _TUPLES:
                if isinstance(v, list):
                    known[k] = tuple(v)
                else:
                    extra[k] = v
            elif k == "state":
                state = _STATES.get(v) if isinstance(v, str) else None
                if state is None:  # a state of a later version
                    extra[k] = v
                else:
                    known[k] = state
            else:
                known[k] = v
        # the API and the publisher read records by the thousand: filled in directly, not
        # through the generated __init__ (same fields, same values; order as written)
        record = object.__new__(cls)
        record.__dict__.update(_DEFAULTS, **known, extra=extra, order=tuple(data))
        return record

    def to_json(self) -> dict[str, Any]:
        """The JSON object the store holds: the fields set, as they were written."""
        if self.extra:
            return {k: self._json(k) for k in self.order or ()}
        values = self.__dict__
        return {k: _plain(values[k]) for k in self.order or ()}

    def _json(self, key: str) -> Any:
        return self.extra[key] if key in self.extra else _plain(getattr(self, key))

    def updated(self, changes: Mapping[str, Any]) -> RunRecord:
        """This record with `changes` (JSON fields) set, as dict.update sets them."""
        return RunRecord.from_json({**self.to_json(), **changes})


_FIELDS = tuple(f.name for f in fields(RunRecord) if f.name not in ("extra", "order"))
_NAMES = frozenset(_FIELDS)
_TUPLES = frozenset(("targets", "actions", "notifications", "waiting"))
_STATES = {s.value: s for s in RunState}
_DEFAULTS = {"run_id": "", **{f.name: f.default for f in fields(RunRecord)[1:]
                              if f.name not in ("extra", "order")}}


def _plain(v: Any) -> Any:
    """A field's value as JSON holds it."""
    return list(v) if isinstance(v, tuple) else v.value if isinstance(v, RunState) else v


def new_run_id(now: float | None = None) -> str:
    """Sortable by start time: milliseconds in hex, then 32 random bits."""
    millis = int((time.time() if now is None else now) * 1000)
    return f"{millis:012x}-{secrets.token_hex(4)}"
