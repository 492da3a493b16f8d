"""The API's live event source: one subscriber to the store's changes, fanned out to every
WebSocket client.

The store tells its changes (Store.changes: Redis pub/sub, or the state directory watched;
runner/store/changes.py), the hub follows them once.

Each raw change is turned once into what clients show (the run's summary, the entry's value)
and put on every client's bounded queue; a client that falls that far behind is dropped (its
page reconnects and starts from a fresh snapshot).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from runner.errors import StoreUnavailable
from runner.ops.overview import reports, shown
from runner.runs import RunRecord
from runner.store import SUMMARY, Store, keys

log = logging.getLogger("runner.api")
QUEUE = 1000  # events a client may lag behind before it is dropped
ENTRY_KINDS = {keys.RECONCILE: "reconcile", keys.BEAT: "beat", keys.REPORTS: "reports",
               keys.SUSPENDED: "suspended"}


def summary(record: RunRecord) -> dict[str, Any]:
    """A run record's JSON without its result (the output), plus each target's status."""
    data = record.to_json()
    out = {k: data[k] for k in SUMMARY if k in data}
    targets = (record.result or {}).get("targets") or {}
    if targets:
        out["target_status"] = {name: t.get("status") for name, t in targets.items()}
    if data.get("actions"):
        out["actions"] = data["actions"]
    return out


class Hub:
    """Fans the store's run and entry changes out to the API's live clients."""

    def __init__(self, store: Store, redis_url: str = "",
                 on_run: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.store, self.redis_url = store, redis_url
        self.on_run = on_run
        self.clients: set[asyncio.Queue[str | None]] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.generation = 0  # counts run changes: what a cached run list is checked against

    def subscribe(self) -> asyncio.Queue[str | None]:
        q: asyncio.Queue[str | None] = asyncio.Queue(QUEUE)
        self.clients.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[str | None]) -> None:
        self.clients.discard(q)

    def broadcast(self, event: dict[str, Any]) -> None:
        """Sends `event` to every client (call on the hub's loop)."""
        text = json.dumps(event)
        for q in list(self.clients):
            try:
                q.put_nowait(text)
            except asyncio.QueueFull:
                self.clients.discard(q)
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()
                q.put_nowait(None)  # tells the client's sender to close

    def broadcast_threadsafe(self, event: dict[str, Any]) -> None:
        """From another thread (the workers refresher)."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.broadcast, event)

    async def run(self) -> None:
        """Follows the store's changes until cancelled."""
        self.loop = asyncio.get_running_loop()
        async for raw in self._changes():
            if raw.get("kind") == "run":
                self.generation += 1
            try:
                event = await asyncio.to_thread(self._enrich, raw)
            except StoreUnavailable as e:  # gone since it told the change: the change feed
                log.debug("events: skipped a change: %s", e)  # says so and comes back
                continue
            if event is not None:
                self.broadcast(event)

    def _enrich(self, raw: dict[str, Any]) -> dict[str, Any] | None:
        if raw.get("kind") == "run":
            record = self.store.run(str(raw.get("run_id")))
            if record is None:
                return None
            run = summary(record)
            if self.on_run:
                self.on_run(run)
            return {"kind": "run", "run_id": raw["run_id"], "state": run.get("state"),
                    "run": run}
        key = str(raw.get("key", ""))
        prefix, _, name = key.partition(":")
        if prefix == "worker" and name:
            return {"kind": "worker", "host": name, "entry": self.store.get(key)}
        if prefix == "schedule" and name:
            return {"kind": "schedule", "name": name, "state": self.store.get(key)}
        if key in ENTRY_KINDS:  # as GET /api/status shows them: no credentials, no paths
            value = self.store.get(key)
            return {"kind": ENTRY_KINDS[key],
                    "value": reports(value) if key == keys.REPORTS else shown(value)}
        return None  # definitions, blobs, revisions, locks: not news

    def _changes(self) -> AsyncIterator[dict[str, Any]]:
        return self.store.changes()
