"""Hot reload inside a running `runner worker NAME`: a consumer bootstep that, every RELOAD
seconds, reads the configuration the system runs and, when it changed, makes the worker match
it — consume the queues now assigned to NAME, stop consuming removed ones (runs in progress
finish), and grow or shrink the pool to the worker's concurrency. No restart. What it matched,
and when, is kept in the store (`worker:HOSTNAME`) with a heartbeat every HEARTBEAT seconds.
It changes the consumers only when NAME's queues or concurrency change, so one added by hand
(`celery -A runner.app control add_consumer`) stays until then.

It also records RECEIVED when the worker takes a run's message (before a pool process is free
to start it): Celery's task_received signal, sent by the worker's main process, queues the mark
for a thread that writes them in batches.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import replace
from queue import Empty, SimpleQueue
from typing import Any

from celery import Celery, bootsteps, signals

from runner.celery.message import TASK
from runner.errors import RunnerError, StoreUnavailable
from runner.store.entries import WorkerHeartbeat, write_worker
from runner.store.outage import Outage
from runner.system import RELOAD, System

HEARTBEAT = 2.0  # seconds between a worker's heartbeats in its store entry
_BATCH = 0.05  # at least this many seconds between two RECEIVED writes (batches)
log = logging.getLogger("runner.worker")


def install(app: Celery, system: System, name: str, fixed_concurrency: int | None) -> None:
    """Makes `app`'s worker NAME follow the configuration and record RECEIVED."""
    # Celery's two INFO lines per task (received, succeeded): written for every task a busy
    # worker runs, they repeat what the run's record holds (runner history, the report branch)
    for chatty in ("celery.worker.strategy", "celery.app.trace"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    app.steps["consumer"].add(reload_step(app, system, name, fixed_concurrency))
    record_received(app, system, name)


def reload_step(app: Celery, system: System, name: str,
                fixed_concurrency: int | None) -> type[bootsteps.StartStopStep]:
    """The consumer bootstep that matches worker NAME to the configuration every RELOAD s."""

    class Reload(bootsteps.StartStopStep):  # type: ignore[misc]
        requires = ("celery.worker.consumer.tasks:Tasks",)

        def start(self, c: Any) -> None:
            self.entry = WorkerHeartbeat(name)
            self.outage = Outage(f"worker {name}", log)
            self.beat = 0.0
            self.match(c)  # its entry written before it takes a run: the reaper knows it
            self.tref = c.timer.call_repeatedly(RELOAD, self.match, (c,), priority=10)

        def stop(self, c: Any) -> None:
            if getattr(self, "tref", None):
                self.tref.cancel()
                with contextlib.suppress(StoreUnavailable):
                    self.put(c, stopped=time.time())
                if not getattr(self, "draining", None):  # a warm shutdown lets runs finish:
                    self.draining = threading.Thread(  # heart-beat until the process exits,
                        target=self.drain, args=(c,), name="runner-heartbeat",  # so the
                        daemon=True)                     # reaper does not bury them
                    self.draining.start()

        def drain(self, c: Any) -> None:
            while True:
                time.sleep(HEARTBEAT)
                with contextlib.suppress(RunnerError, OSError):
                    self.put(c)

        def put(self, c: Any, **fields: Any) -> None:
            """The worker's entry (worker:HOST): what it serves and a heartbeat, for status
            and the API even when remote control is slow to answer."""
            self.entry = replace(self.entry, **fields, heartbeat=time.time())
            self.beat = time.monotonic()
            write_worker(system.store, c.hostname, self.entry)

        def match(self, c: Any) -> None:
            try:
                self.follow(c)
            except StoreUnavailable as e:  # keep serving what we serve; Celery reconnects
                self.outage.lost(e)       # its broker connection itself
            else:
                self.outage.ok()

        def follow(self, c: Any) -> None:
            try:
                config = system.config()
            except StoreUnavailable:
                raise
            except RunnerError as e:  # an invalid --repo: keep serving what we serve
                log.warning("worker %s keeps its queues: %s", name, e)
                return
            if config is getattr(self, "config", None):  # unchanged
                if time.monotonic() - self.beat > HEARTBEAT:
                    self.put(c)
                return
            self.config = app.conf.runner_config = config
            worker = config.workers.get(name)
            wanted = set(worker.queues) if worker else set()
            size = fixed_concurrency or (worker.concurrency if worker else None)
            # a configuration read again (--repo, looked at every 0.5 s) or changed elsewhere
            # leaves the consumers alone: one added by hand (celery control) stays
            if (wanted, size) != getattr(self, "assigned", None):
                self.assigned = (wanted, size)
                self.assign(c, wanted, size)
            self.put(c, revision=config.revision, queues=tuple(sorted(wanted)), concurrency=size,
                     matched_at=time.time())

        def assign(self, c: Any, wanted: set[str], size: int | None) -> None:
            current = {q.name for q in c.task_consumer.queues}
            for queue in sorted(wanted - current):
                log.info("worker %s now consumes queue %s", name, queue)
                c.add_task_queue(queue)
            for queue in sorted(current - wanted):
                log.info("worker %s stops consuming queue %s", name, queue)
                c.cancel_task_queue(queue)
            pool = c.pool
            if size and hasattr(pool, "num_processes") and pool.num_processes != size:
                log.info("worker %s concurrency %s -> %s", name, pool.num_processes, size)
                if size > pool.num_processes:
                    pool.grow(size - pool.num_processes)
                else:
                    pool.shrink(pool.num_processes - size)

    return Reload


def record_received(app: Celery, system: System, name: str) -> None:
    """Records RECEIVED for each run message `app`'s worker takes, in batches, off its loop."""
    marks: SimpleQueue[tuple[str, float]] = SimpleQueue()

    def write() -> None:
        # off the consumer's loop, at most one write per _BATCH: a store round trip per run
        # would hold the consumer back from taking the next message
        last = 0.0
        while True:
            batch = [marks.get()]
            wait = last + _BATCH - time.monotonic()
            if wait > 0:  # busy: collect what arrives meanwhile (each mark keeps its time)
                time.sleep(wait)
            last = time.monotonic()
            while len(batch) < 500:
                try:
                    batch.append(marks.get_nowait())
                except Empty:
                    break
            try:
                system.store.mark_received(batch)
            except (OSError, RunnerError) as e:  # RECEIVED is news, not state: not retried
                log.warning("worker %s could not record %d received run(s): %s", name,
                            len(batch), e)

    writer: list[threading.Thread] = []  # started with the first message, after the pool forked

    def received(sender: Any = None, request: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is app and request is not None and request.type == TASK:
            if not writer:
                writer.append(threading.Thread(target=write, name="runner-received",
                                               daemon=True))
                writer[0].start()
            marks.put((request.id, time.time()))

    signals.task_received.connect(received, weak=False)
