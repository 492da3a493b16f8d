"""The API's live event source: one subscriber to the store's changes, fanned out to every
WebSocket client.

- Redis: the store PUBLISHes `{"kind": "run", "run_id", "state"}` with each run write and
  `{"kind": "entry", "key"}` with each entry write, on `runner:events` (state.py), in the same
  round trip as the write; the hub subscribes once.
- Embedded: the hub watches the state directory's `runs/` and `kv/` with watchfiles.

Each raw change is turned once into what clients show (the run's summary, the entry's value)
and put on every client's bounded queue; a client that falls that far behind is dropped (its
page reconnects and starts from a fresh snapshot).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from runner.overview import reports, shown
from runner.state import SUMMARY, FileStore, RedisStore, Store

log = logging.getLogger("runner.api")
QUEUE = 1000  # events a client may lag behind before it is dropped
ENTRY_KINDS = {"reconcile": "reconcile", "beat": "beat", "reports": "reports",
               "suspended": "suspended"}


def summary(record: dict[str, Any]) -> dict[str, Any]:
    """A run record without its result (the output), plus each target's status."""
    out = {k: record[k] for k in SUMMARY if k in record}
    targets = (record.get("result") or {}).get("targets") or {}
    if targets:
        out["target_status"] = {name: t.get("status") for name, t in targets.items()}
    if record.get("actions"):
        out["actions"] = record["actions"]
    return out


class Hub:
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
            event = await asyncio.to_thread(self._enrich, raw)
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
                    "value": reports(value) if key == "reports" else shown(value)}
        return None  # definitions, blobs, revisions, locks: not news

    async def _changes(self) -> AsyncIterator[dict[str, Any]]:
        if isinstance(self.store, RedisStore):
            async for event in _redis_changes(self.redis_url, self.store.events):
                yield event
        elif isinstance(self.store, FileStore):
            async for event in _file_changes(self.store.root):
                yield event


async def _redis_changes(url: str, channel: str) -> AsyncIterator[dict[str, Any]]:
    from redis.exceptions import RedisError

    from runner.redis_url import async_client

    client = async_client(url, decode_responses=True)
    delay = 0.1
    while True:
        try:
            async with client.pubsub() as pubsub:
                await pubsub.subscribe(channel)
                if delay > 0.1:
                    log.warning("events: Redis is back; subscribed again")
                delay = 0.1
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        with contextlib.suppress(ValueError):
                            yield json.loads(message["data"])
        except (RedisError, OSError) as e:
            if delay == 0.1:  # told once per outage
                log.warning("events: lost Redis (%s); resubscribing until it is back", e)
            await asyncio.sleep(delay)  # backoff before reconnecting, not a wait for a state
            delay = min(5.0, delay * 2)


async def _file_changes(root: Path) -> AsyncIterator[dict[str, Any]]:
    """What is written under the file store's runs/ and kv/: inotify on the event loop
    (nothing runs while nothing changes), else watchfiles (polling every 5 ms)."""
    from runner import inotify

    watch = inotify.open_folder(root / "runs", root / "kv")
    if watch is None:
        async for paths in _watchfiles(root):
            for event in _file_events(paths):
                yield event
        return
    loop, ready = asyncio.get_running_loop(), asyncio.Event()
    loop.add_reader(watch.fd, ready.set)
    try:
        while True:
            await ready.wait()
            ready.clear()
            for event in _file_events(watch.arrived()):
                yield event
    finally:
        loop.remove_reader(watch.fd)
        watch.close()


async def _watchfiles(root: Path) -> AsyncIterator[set[Path]]:
    import watchfiles

    async for changes in watchfiles.awatch(root / "runs", root / "kv", debounce=20, step=5,
                                           recursive=False):
        yield {Path(p) for change, p in changes if change != watchfiles.Change.deleted}


def _file_events(paths: set[Path]) -> Iterator[dict[str, Any]]:
    for p in sorted(paths):
        if not p.name.endswith(".json") or p.name.startswith("."):
            continue
        if p.parent.name == "runs":
            yield {"kind": "run", "run_id": p.stem}
        else:
            yield {"kind": "entry", "key": p.stem}
