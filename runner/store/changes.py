"""Following a store's writes as they happen (Store.changes; the API's live events).

- Redis: the store PUBLISHes `{"kind": "run", "run_id", "state"}` with each run write and
  `{"kind": "entry", "key"}` with each entry write, on `runner:events`, in the same round trip
  as the write; one subscription follows them, resubscribing after a lost server.
- Files: the state directory's `runs/` and `kv/` are watched (inotify, else watchfiles).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("runner.api")


def stamp(folder: Path, settled: float = 2.0) -> str | None:
    """The modification time of `folder` (it changes when a file is written into it), or
    None while it is less than `settled` seconds old: a write in the same tick of the
    filesystem's clock may not change it."""
    mtime = folder.stat().st_mtime_ns
    return None if mtime > (time.time() - settled) * 1e9 else str(mtime)


async def redis_changes(url: str, channel: str) -> AsyncIterator[dict[str, Any]]:
    """The events published on `channel` of the Redis at `url`, until cancelled."""
    from redis.exceptions import RedisError

    from runner.adapters.redis_url import async_client

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


async def file_changes(root: Path) -> AsyncIterator[dict[str, Any]]:
    """What is written under the file store's runs/ and kv/: inotify on the event loop
    (nothing runs while nothing changes), else watchfiles (polling every 5 ms)."""
    from runner.adapters import inotify

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
