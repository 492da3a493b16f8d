"""Cluster-wide semaphores (issue 22's limits), as pure functions over their states; the
backends read and write those states in one atomic step (files: under one lock file; Redis:
a WATCH/MULTI transaction) and call these in between.

A limit's state is {"max": N, "holders": {HOLDER: {owner, since, until}}, "queue": [{id,
owner, since, until}]}: a HOLDER (a run on one target, "RUN_ID/TARGET", or a run as a whole,
"RUN_ID") holds a slot or waits in the queue, in order of arrival. Every entry is a lease:
the worker running HOLDER calls take() again every few seconds, which renews it; one left
`ttl` seconds unrenewed (its worker or pool process died) is dropped by whoever looks next,
so a dead worker's slots free themselves without anyone burying them.

take() is all-or-nothing: HOLDER joins the queue of every limit it needs at once (so any two
holders stand in the same order in every queue they share) and is granted all of them at
once, when in each one fewer holders than its free slots stand before it. The oldest waiter
is never blocked by a younger one, so nobody starves and no two holders deadlock.
"""

from __future__ import annotations

from typing import Any

TTL = 6.0  # seconds a slot or a place in a queue lasts unrenewed
State = dict[str, Any]


def fresh(state: State | None, now: float) -> State:
    """`state` without the leases that ran out (a copy; {} for none)."""
    if not state:
        return {"max": 1, "holders": {}, "queue": []}
    return {"max": state.get("max", 1),
            "holders": {h: e for h, e in state.get("holders", {}).items() if e["until"] >= now},
            "queue": [e for e in state.get("queue", []) if e["until"] >= now]}


def take(states: dict[str, State | None], wanted: list[tuple[str, int]], holder: str,
         owner: str, now: float, ttl: float = TTL) -> tuple[dict[str, State | None], list[str]]:
    """The new states of the limits `wanted` ((name, max)) once `holder` (run by `owner`)
    asked for a slot of each: renewed if it holds them, else granted all at once if its turn
    came in each, else queued (renewing its place); and the names it still waits for."""
    new = {name: fresh(states.get(name), now) | {"max": n} for name, n in wanted}
    entry = {"id": holder, "owner": owner, "since": now, "until": now + ttl}
    for s in new.values():
        if holder in s["holders"]:
            s["holders"][holder]["until"] = entry["until"]
            continue
        mine = next((e for e in s["queue"] if e["id"] == holder), None)
        if mine is None:
            s["queue"].append(dict(entry))
        else:
            mine["until"] = entry["until"]
    blocked = [name for name, s in new.items() if holder not in s["holders"]
               and _ahead(s, holder) >= s["max"] - len(s["holders"])]
    if not blocked:
        for s in new.values():
            if holder not in s["holders"]:
                mine = next(e for e in s["queue"] if e["id"] == holder)
                s["queue"].remove(mine)
                s["holders"][holder] = {"owner": owner, "since": now, "until": entry["until"]}
    return {name: s if s["holders"] or s["queue"] else None for name, s in new.items()}, blocked


def free(states: dict[str, State | None], holder: str, now: float) -> dict[str, State | None]:
    """The new states once `holder` left each limit (held or waited for): None when empty."""
    out: dict[str, State | None] = {}
    for name, state in states.items():
        s = fresh(state, now)
        s["holders"].pop(holder, None)
        s["queue"] = [e for e in s["queue"] if e["id"] != holder]
        out[name] = s if s["holders"] or s["queue"] else None
    return out


def _ahead(state: State, holder: str) -> int:
    """How many stand before `holder` in the queue of `state`."""
    return next(i for i, e in enumerate(state["queue"]) if e["id"] == holder)
