"""A worker's side of the cluster-wide limits (issue 22): the slots one run takes, through the
store's semaphores (store/slots.py), in the worker process's event loop.

The run as a whole first takes its job's `max_active` slot, then each target, before its
first step, every slot it needs there (its `max_runs`, the named limits selecting it) at once.
While it waits, the record's `waiting` says for what, and its state is WAITING while no
target of it runs (STARTED otherwise); the worker polls with a backoff (up to POLL_MAX
seconds), and renews what it holds every RENEW seconds, so slots of a worker that died lapse
within slots.TTL. A cancel stops the wait: the target ends cancelled, never run, and the run
goes from WAITING to REVOKED. No slot is waited for past `wait_max` seconds (from the Gate's
creation, RUNNER_LIMIT_WAIT_MAX): the run's time limit allows for that much waiting besides
its work (message.time_limit), so a run that waited long still gets its job's full time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from runner.desired import duration_text
from runner.errors import SlotTimeout, StoreUnavailable
from runner.executor.cancel import Cancel
from runner.runs import BEGUN, RunState
from runner.store import Store
from runner.store.slots import TTL

POLL_MIN, POLL_MAX = 0.05, 1.0  # seconds between two asks for a slot, doubling
RENEW = TTL / 4  # seconds between two renewals of the slots held
log = logging.getLogger("runner.limits")
Wanted = list[tuple[str, int]]


@dataclass
class Gate:
    """Not frozen: what the run `run_id` (run by `owner`) holds and waits for. `wanted`:
    query.slots' answer, "" the job's own slot."""

    store: Store
    run_id: str
    owner: str
    wanted: dict[str, Wanted]
    cancel: Cancel
    wait_max: float = math.inf  # seconds from `since`: then a slot not granted ends the wait
    since: float = field(default_factory=time.monotonic)
    held: dict[str, Wanted] = field(default_factory=dict)  # holder -> its slots
    waiting: dict[str, list[str]] = field(default_factory=dict)  # holder -> limits
    running: int = 0  # targets past their slots
    # the record's state and `waiting`, as last written (begin_run marked it STARTED)
    shown: tuple[RunState, list[str]] = (RunState.STARTED, [])

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """The run's job-level slot, held around all of it (with a renewing task); a cancel
        while waiting goes on into the run, whose targets then end cancelled at once."""
        renewing = asyncio.get_running_loop().create_task(
            self._renew() if any(self.wanted.values()) else asyncio.sleep(0))
        try:
            async with self._slots(self.run_id, self.wanted.get("", [])):
                yield
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing

    @contextlib.asynccontextmanager
    async def target(self, name: str) -> AsyncIterator[None]:
        """Every slot target `name` needs, taken at once, held while it runs."""
        async with self._slots(f"{self.run_id}/{name}", self.wanted.get(name, [])):
            counted = not self.cancel.is_set()  # else it ends cancelled, never run
            self.running += counted
            self._show()
            try:
                yield
            finally:
                self.running -= counted
                self._show()  # WAITING again if no target runs and one waits

    @contextlib.asynccontextmanager
    async def _slots(self, holder: str, wanted: Wanted) -> AsyncIterator[None]:
        if not wanted:
            yield
            return
        try:
            delay = POLL_MIN
            while not self._take(holder, wanted) and not self.cancel.is_set():
                if time.monotonic() - self.since > self.wait_max:
                    raise SlotTimeout(self._expired(holder))
                await asyncio.sleep(delay)
                delay = min(2 * delay, POLL_MAX)
            yield
        finally:
            self.held.pop(holder, None)
            self.waiting.pop(holder, None)
            self._show()
            with contextlib.suppress(StoreUnavailable):  # else its lease lapses
                self.store.free_slots([n for n, _ in wanted], holder)

    def _expired(self, holder: str) -> str:
        what = " and ".join(self.waiting.get(holder, ["its slots"]))
        waited = f"waited more than {duration_text(int(self.wait_max))} for {what} " \
                 "(RUNNER_LIMIT_WAIT_MAX)"
        if holder == self.run_id:
            return f"run {self.run_id} {waited} and was not run"
        return f"{holder.partition('/')[2]}: not run, it {waited}"

    def _take(self, holder: str, wanted: Wanted) -> bool:
        try:
            blocked = self.store.take_slots(wanted, holder, self.owner, TTL)
        except StoreUnavailable as e:
            log.warning("run %s: cannot ask for its slots (%s); asking again", self.run_id, e)
            return False
        if blocked:
            self.waiting[holder] = blocked
        else:
            self.waiting.pop(holder, None)
            self.held[holder] = wanted
        self._show()
        return not blocked

    def _show(self) -> None:
        """Writes the record's state and `waiting` when they changed: WAITING while it waits
        for a slot and no target runs, else STARTED; a cancelled run keeps its state until
        the worker ends it REVOKED. Only while a worker holds it (BEGUN): a run the reaper
        ended stays ended."""
        now = sorted({n for names in self.waiting.values() for n in names})
        state = RunState.WAITING if now and not self.running else RunState.STARTED
        if self.cancel.is_set():
            state = self.shown[0]
        if (state, now) != self.shown:
            with contextlib.suppress(StoreUnavailable):  # else written at the next change
                self.store.end_run(self.run_id, {"state": state, "waiting": now or None},
                                   BEGUN)
                self.shown = (state, now)

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(RENEW)
            for holder, wanted in list(self.held.items()):
                with contextlib.suppress(StoreUnavailable):
                    if self.store.take_slots(wanted, holder, self.owner, TTL):
                        log.warning("run %s: %s lost its slots (its lease lapsed)",
                                    self.run_id, holder)
