"""The state store: run records, cancel requests, locks, entries and tallies, on Redis
(REDIS_URL) or in files under the state directory (the embedded default).

base.py holds the protocol, keys.py every key name, redis.py and files.py the backends (the
Lua of redis.py in lua/), changes.py the following of writes. No library error leaves a store
method: Redis being away, or a full or read-only state directory, is StoreUnavailable.
"""

from __future__ import annotations

from pathlib import Path

from runner.errors import StoreUnavailable
from runner.store.base import SUMMARY, Begin, Cursor, RunFilter, Store, forget_all

__all__ = ["SUMMARY", "Begin", "Cursor", "RunFilter", "Store", "StoreUnavailable", "forget_all",
           "open_store"]


def open_store(redis_url: str, state_dir: Path) -> Store:
    """The store settings name: Redis at `redis_url`, else files under `state_dir`/state."""
    if redis_url:
        from runner.store.redis import RedisStore  # imports redis: only when it is used

        return RedisStore(redis_url)
    from runner.store.files import FileStore

    return FileStore(state_dir / "state")
