"""The loop `runner publish --watch` (and so `runner up`) runs: one publisher per store holds
its lock, publishes the feed, pushes with backoff, and shows its status in the store."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from runner.errors import ReportError, RunnerError, StoreUnavailable
from runner.publish.push import Publisher
from runner.store import Store, forget_all, keys
from runner.store.entries import write_publisher
from runner.store.outage import Outage

RENEW = 2.5  # seconds between renewals of an idle publisher's lease (a write each)
LOCK_TTL = 10.0  # seconds; renewed every batch. Two writers would still be safe (CAS, ids)
FORGET_EVERY = 60.0  # seconds between looks for run records past RUNNER_KEEP_RUNS
FORGET_BATCH = 1000
log = logging.getLogger("runner.publish")


def serve(store: Store, publisher: Publisher, stop: threading.Event,
          keep_days: Callable[[], int | None] = lambda: None, batch: int = 500,
          poll: float = 0.25, once: bool = False, keep_runs: float | None = None) -> None:
    """Publishes the feed and pushes until `stop` (or, with `once`, until the feed is empty
    and one push was tried). One publisher per store holds the lock; others stand by.
    A failed push is tried again with exponential backoff (1 s to 60 s); publishing goes on.
    Run records published more than `keep_runs` seconds ago are deleted from the store (the
    branch keeps them), looked for once a minute."""
    owner = uuid.uuid4().hex[:8]
    outage = Outage("publisher", log)
    try:
        while True:
            try:
                return _serve(store, publisher, stop, keep_days, batch, poll, once, owner,
                              keep_runs, outage)
            except StoreUnavailable as e:  # the runs stay on the feed until it is back
                if once:
                    raise
                stop.wait(outage.lost(e))
    finally:
        with contextlib.suppress(StoreUnavailable):
            store.lock(keys.PUBLISHER, owner, 0.001)  # let the next publisher in at once


def _serve(store: Store, publisher: Publisher, stop: threading.Event,
           keep_days: Callable[[], int | None], batch: int, poll: float, once: bool,
           owner: str, keep_runs: float | None, outage: Outage) -> None:
    last_error: str | None = None
    backoff, next_push, shown, swept = 0.0, 0.0, 0.0, 0.0
    to_push = publisher.unpushed() > 0
    waited = time.monotonic() + 2 * LOCK_TTL  # a killed publisher's lease runs out
    renewed, idle = -LOCK_TTL, False  # an idle publisher renews its lease every RENEW s
    while not stop.is_set():
        if not (idle and time.monotonic() - renewed < RENEW):
            held, renewed = store.lock(keys.PUBLISHER, owner, LOCK_TTL), time.monotonic()
        outage.ok()
        if not held:
            if once and time.monotonic() > waited:
                raise ReportError(f"another publisher holds the lock of this store (for "
                                  f"{2 * LOCK_TTL:.0f}s); is runner up running?")
            stop.wait(0.5)
            continue
        try:
            written = publisher.publish(store, batch, keep_days(), hold=not once)
        except ReportError as e:  # git could not write: the runs stay on the feed
            if once:
                raise
            log.warning("%s; trying again in 5s", e)
            write_publisher(store, publisher.status(str(e)))
            stop.wait(5.0)
            continue
        changed = bool(written.committed)
        idle = not (written.committed or written.present)
        if written.committed:
            log.info("report branch %s at %s: %d run(s) committed", publisher.branch,
                     (written.head or "")[:12], len(written.committed))
            to_push = publisher.remote is not None
        more = len(written.committed) + len(written.present) >= batch
        if to_push and not more and time.monotonic() >= next_push:
            changed = True
            try:
                publisher.push()
                last_error, backoff, to_push = None, 0.0, False
            except ReportError as e:
                last_error = str(e)
                backoff = min(60.0, max(1.0, backoff * 2))
                next_push = time.monotonic() + backoff
                log.warning("%s; next push in %.0fs", e, backoff)
        if changed or time.monotonic() - shown > 5:
            write_publisher(store, publisher.status(last_error))
            shown = time.monotonic()
        if keep_runs and time.monotonic() - swept > FORGET_EVERY:
            swept = time.monotonic()
            expire_records(store, keep_runs, stop)
        if once and not more:
            if last_error:
                raise ReportError(last_error)
            return
        if not more:
            stop.wait(poll)


def keep_days_of(config: Callable[[], Any]) -> Callable[[], int | None]:
    """reports.keep_days of the configuration the system runs (None when unreadable)."""
    def read() -> int | None:
        try:
            return config().reports.keep_days  # type: ignore[no-any-return]
        except RunnerError:
            return None
    return read


def expire_records(store: Store, keep_runs: float, stop: threading.Event) -> None:
    """Deletes the run records published more than `keep_runs` seconds ago (the branch keeps
    them); a failure is logged and left to the next call."""
    try:
        n = forget_all(store, time.time() - keep_runs, FORGET_BATCH, stop.is_set)
    except (OSError, RunnerError) as e:  # tried again in a minute
        log.warning("could not delete old run records: %s", e)
    else:
        if n:
            log.info("%d published run record(s) older than %.0fs deleted from the "
                     "store", n, keep_runs)
