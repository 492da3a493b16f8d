"""The store's contract: one small protocol two backends implement (redis.py, files.py), what
a worker learns when it starts a run, and the helpers both share.

Run records go in and come out as runs.RunRecord (its fields are the record's documentation);
update_run and end_run take the fields to set as JSON (RunRecord.to_json's keys).
"""

from __future__ import annotations

import functools
import json
import time
import types
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ParamSpec, Protocol, TypeVar

from runner.errors import StoreUnavailable
from runner.runs import BEGUN, ENDED, RunRecord, RunState
from runner.store import keys

# what a listing of runs shows (runs_page): everything but the result, which holds the output
SUMMARY = ("run_id", "job", "state", "queue", "trigger", "revision", "worker", "created",
           "received", "started", "finished", "error", "retry_of", "schedule",
           "scheduled_for", "limit", "deliveries", "targets", "note", "workflow", "parent",
           "node", "params", "late", "waiting")
Cursor = tuple[float, str]  # (created, run_id) of the last run of a page
ID_SLACK = 60.0  # seconds a run's `created` may lie after the time its id encodes
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class RunFilter:
    """What runs_page keeps besides its job and time range: each field given must hold."""

    state: str | None = None
    queue: str | None = None
    trigger: str | None = None  # the trigger, or its first words: "schedule" keeps "schedule X"
    worker: str | None = None
    prefix: str | None = None   # of the run id

    def keeps(self, record: Mapping[str, Any]) -> bool:
        """Whether the record (its JSON fields) passes every field given."""
        trigger = str(record.get("trigger") or "")
        return ((self.state is None or record.get("state") == self.state)
                and (self.queue is None or record.get("queue") == self.queue)
                and (self.worker is None or record.get("worker") == self.worker)
                and (self.prefix is None or str(record.get("run_id")).startswith(self.prefix))
                and (self.trigger is None or trigger == self.trigger
                     or trigger.startswith(f"{self.trigger} ")))

    def window(self, since: float | None, until: float | None
               ) -> tuple[float | None, float | None]:
        """`since` and `until` narrowed to the creation times a run id starting with `prefix`
        can have (new_run_id: milliseconds in 12 hex digits first), so a search by id reads
        the runs of that time only."""
        head = (self.prefix or "")[:12]
        if not head or not set(head) <= _HEX:
            return since, until
        low = int(head.ljust(12, "0"), 16) / 1000 - ID_SLACK
        high = int(head.ljust(12, "f"), 16) / 1000 + ID_SLACK
        return (low if since is None else max(since, low),
                high if until is None else min(until, high))


@dataclass(frozen=True)
class Begin:
    """What a worker learns when it starts a run."""

    previous: str | None  # the state before (None: no record)
    cancelled: bool       # its cancel was requested: not started
    deliveries: int       # this delivery's number (1 the first time); 0 when not started

    @property
    def started(self) -> bool:
        """Whether this delivery starts the run."""
        return self.deliveries > 0


class Store(Protocol):
    """Run records, cancel requests, locks, entries and tallies; every method raises
    runner's StoreUnavailable, never a library's error, when the store cannot answer."""

    def save_run(self, record: RunRecord) -> None:
        """Writes a new run record, whole, and indexes it."""

    def update_run(self, run_id: str, fields: dict[str, Any]) -> None:
        """Sets `fields` of an existing run record."""

    def end_run(self, run_id: str, fields: dict[str, Any], expect: tuple[str, ...]) -> bool:
        """update_run, only while the record's state is one of `expect`, in one step (two
        reapers, or a reaper and the worker, never both end a run): whether it did."""

    def withdraw(self, run_id: str) -> None:
        """Removes the record of a run that was never queued (its message failed)."""

    def begin_run(self, run_id: str, job: str, worker: str, now: float) -> Begin:
        """Unless the run has begun already (STARTED or WAITING: a second delivery of its
        message runs nothing), has ended or its cancel was requested: count the delivery and
        mark it STARTED by `worker` (creating and indexing the record if there is none)."""

    def mark_received(self, marks: list[tuple[str, float]]) -> None:
        """Each (run id, when) a worker took the run's message: PENDING -> RECEIVED, and the
        time kept as `received` whatever the state is by now (a worker writes these from a
        thread of its own, so its pool may have started the run already)."""

    def run(self, run_id: str) -> RunRecord | None:
        """The record of run `run_id`, or None."""

    def runs(self, job: str | None = None, limit: int = 20) -> list[RunRecord]:
        """The newest `limit` records (of `job` if given), newest first."""

    def request_cancel(self, run_id: str, by: str) -> None:
        """Asks the run to stop; `by` says who asked, as its cancel reason names them."""

    def cancel_requested(self, run_id: str) -> str | None:
        """Who asked the run to stop, or None."""

    def lock(self, name: str, owner: str, ttl: float) -> bool:
        """Take or renew the lock `name` for `owner` for `ttl` seconds; False if held by
        another owner whose lease has not run out."""

    def get(self, key: str) -> dict[str, Any] | None:
        """The entry `key` (keys.py names them), or None."""

    def put(self, key: str, value: dict[str, Any]) -> None:
        """Writes the entry `key`, whole."""

    def delete(self, key: str) -> None:
        """Removes the entry `key` (nothing when there is none)."""

    def put_many(self, values: dict[str, dict[str, Any]]) -> None:
        """put of each (key, value), in one round trip where the store has them; each key is
        written whole or not at all."""

    def save_runs(self, records: list[RunRecord]) -> None:
        """save_run of each record, in one round trip where the store has them."""

    def put_new(self, key: str, value: dict[str, Any]) -> dict[str, Any]:
        """put, only if `key` is absent (one step): the value stored now."""

    def entries(self, prefix: str) -> dict[str, dict[str, Any]]:
        """Every entry whose key starts with `prefix`, by key (for a few, e.g. worker:)."""

    def ping(self) -> None:
        """StoreUnavailable unless the store answers (and, for files, can be written)."""

    def to_publish(self, limit: int, feed: str = keys.PUBLISH) -> list[str]:
        """Ids of finished runs the report publisher has not committed yet, oldest finish
        first. save_run adds a run here, in the same write, when its state is FINAL; and
        to the notifier's feed (feed=keys.NOTIFY), which the notifier reads the same way."""

    def to_notify(self, item: str, at: float) -> None:
        """Puts `item` on the notifier's feed, at time `at`; once there, it is there once:
        keys.late of a run not finished, keys.approval of an approval node opening, or
        keys.refused of a refused revision. The feed keeps its newest NOTIFY_KEEP items."""

    def published(self, run_ids: list[str], feed: str = keys.PUBLISH) -> None:
        """Takes `run_ids` off the to-publish feed (they are on the report branch), or off
        `feed`."""

    def forget(self, before: float, limit: int = 1000, skip: int = 0) -> tuple[int, int]:
        """Looks at up to `limit` run records created before `before`, oldest first, past the
        `skip` oldest of them, and deletes those that have ended and are on the report branch
        (off the to-publish feed), with their downloaded files, their outbox entries and late
        mark (keys.late), and takes them off the notify feed: (deleted, looked at). The
        records it keeps stay first: the next call skips them (see forget_all)."""

    def runs_stamp(self) -> str | None:
        """A value that changes whenever a run record is written, for a caller that reads the
        newest runs only when it changed; None: not known (read them)."""

    def runs_page(self, job: str | None = None, before: Cursor | None = None, limit: int = 50,
                  state: str | None = None, since: float | None = None,
                  scan: int = 5000, until: float | None = None, where: RunFilter | None = None
                  ) -> tuple[list[RunRecord], Cursor | None]:
        """Up to `limit` run summaries (SUMMARY fields) created before the cursor `before`
        (and at or after `since`, at or before `until`), newest first, of `job` and in `state`
        if given, passing `where`, looking at no more than `scan` runs; and the cursor of the
        next page (None: no more). A page may hold fewer than `limit` runs (none, even) and
        a cursor: the scan ended first; the next page goes on from there."""

    def tally(self, key: str, add: dict[str, float], latest: dict[str, float]) -> None:
        """Adds `add` to the counters of tally `key` and sets its `latest` fields, at once
        (every process sees the same cumulative counts)."""

    def tallies(self, key: str) -> dict[str, float]:
        """The counters and fields of tally `key` ({} before the first `tally`)."""

    def holder(self, name: str) -> str | None:
        """Who holds the lock `name` now (its lease has not run out), or None."""

    def server(self) -> str:
        """Which server holds the data now: it changes when Redis restarts or fails over
        (writes of its last moments may be lost then)."""

    def take_slots(self, wanted: list[tuple[str, int]], holder: str, owner: str,
                   ttl: float) -> list[str]:
        """slots.take in one atomic step: asks for (or renews) a slot of each limit `wanted`
        ((name, max)) for `holder`, run by `owner`; the names it still waits for ([]: it
        holds them all)."""

    def free_slots(self, names: list[str], holder: str) -> None:
        """slots.free of `holder` in each limit `names`, in one atomic step."""

    def slots(self) -> dict[str, dict[str, Any]]:
        """The state of every limit someone holds or waits for, by name (slots.py)."""

    def changes(self) -> AsyncIterator[dict[str, Any]]:
        """Each write as it happens, until cancelled: {"kind": "run", "run_id", "state"?} or
        {"kind": "entry", "key"} (the API's live events; a lost server is waited for)."""


def forget_all(store: Store, before: float, batch: int = 1000,
               stop: Callable[[], bool] = lambda: False) -> int:
    """Deletes every run record store.forget would, `batch` at a time, paging past the old
    records it must keep (still running, not on the report branch yet), so that they never
    hide the expired ones behind them: how many it deleted."""
    skip = deleted = 0
    while not stop():
        n, looked = store.forget(before, batch, skip)
        deleted, skip = deleted + n, skip + looked - n
        if looked < batch:
            break
    return deleted


def begin(record: dict[str, Any] | None, cancelled: bool, run_id: str, job: str,
          worker: str, now: float) -> tuple[Begin, dict[str, Any] | None]:
    """begin_run on a whole record: the verdict and the record to write (None: none)."""
    previous = record.get("state") if record else None
    if previous in ENDED or previous in BEGUN or cancelled:
        return Begin(previous, cancelled and previous not in (*ENDED, *BEGUN), 0), None
    record = record or {"run_id": run_id, "job": job, "created": now}
    deliveries = int(record.get("deliveries", 0)) + 1
    record.update(state=RunState.STARTED, started=now, worker=worker, deliveries=deliveries)
    return Begin(previous, False, deliveries), record


P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
Translate = Callable[[Any, Exception], StoreUnavailable | None]


def translated(translate: Translate) -> Callable[[type[T]], type[T]]:
    """A class decorator: each public method of a store raises what `translate` maps a
    library's error to (given the store and the error; None: not the store's to map), so
    callers catch runner's error, never redis's or a raw OSError."""

    def wrap(f: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(f)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return f(*args, **kwargs)
            except Exception as e:
                mapped = translate(args[0], e)
                if mapped is None:
                    raise
                raise mapped from None

        return call

    def decorate(cls: type[T]) -> type[T]:
        for name, value in list(vars(cls).items()):
            if isinstance(value, types.FunctionType) and not name.startswith("_"):
                setattr(cls, name, wrap(value))
        return cls

    return decorate


def downloaded(result: dict[str, Any] | None) -> list[str]:
    """The sha256 of each file a run's result names as downloaded."""
    return [d["sha256"] for t in ((result or {}).get("targets") or {}).values()
            for d in t.get("downloads") or () if d.get("sha256")]


def owned(run_id: str, record: dict[str, Any], live: Iterable[str]) -> list[str]:
    """The entries run `run_id` owns, which forget deletes with its record: its notifications
    and late mark, the files of its `result`, and its live output (`live`: the targets its
    keys.output index names)."""
    return [keys.outbox(run_id), keys.late(run_id), keys.outbox(keys.late(run_id)),
            *(keys.download(run_id, sha) for sha in downloaded(record.get("result"))),
            keys.output(run_id), *(keys.output(run_id, t) for t in live)]


def event(run_id: str, state: str | None) -> str:
    """The change event of a write of run `run_id` (see Store.changes)."""
    return json.dumps({"kind": "run", "run_id": run_id, "state": state})


def finished(record: dict[str, Any]) -> float:
    """When a record's run finished (its place on the publish feed)."""
    return float(record.get("finished") or record.get("created") or time.time())
