"""The embedded store's limit slots: one file per limit under locks/, changed under one lock
file (the rules are store/slots.py's, shared with Redis)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from typing import Any

from runner.store import keys, slots


def _change(store: Any, names: list[str], change: Callable[[dict[str, Any]], Any]) -> Any:
    """change(states) -> (new states, result), under the lock of every limit."""
    with store._exclusive("slots"):
        paths = {n: store.root / "locks" / f"{keys.SLOT}{n}.json" for n in names}
        new, result = change({n: store._read(p) for n, p in paths.items()})
        for n, state in new.items():
            if state is not None:
                store._write(paths[n], state)
            else:
                with contextlib.suppress(FileNotFoundError):
                    paths[n].unlink()
        return result


def take(store: Any, wanted: list[tuple[str, int]], holder: str, owner: str,
         ttl: float) -> list[str]:
    """The limits that block `holder` (none: it holds a slot of each in `wanted` now)."""
    blocked: list[str] = _change(store, [n for n, _ in wanted], lambda states: slots.take(
        states, wanted, holder, owner, time.time(), ttl))
    return blocked


def free(store: Any, names: list[str], holder: str) -> None:
    """`holder` gives back its slots (and places in the queues) of `names`."""
    _change(store, names, lambda states: (slots.free(states, holder, time.time()), None))


def view(store: Any) -> dict[str, dict[str, Any]]:
    """Each limit someone holds or waits for: its fresh holders and queue."""
    now, out = time.time(), {}
    for n in os.listdir(store.root / "locks"):
        if n.startswith(keys.SLOT) and n.endswith(".json"):
            state = slots.fresh(store._read(store.root / "locks" / n), now)
            if state["holders"] or state["queue"]:
                out[n[len(keys.SLOT):-5]] = state
    return out
