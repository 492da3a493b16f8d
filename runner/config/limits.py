"""`limits:` of queues.yaml: named cluster-wide semaphores over sets of targets (the worker
takes their slots, with a target's `max_runs` and a job's `max_active`, through the store)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Limit:
    """At most `max` runs at once work on the targets `targets` select."""

    name: str
    max: int
    targets: tuple[str, ...]  # selectors: NAME, group:GROUP, label:KEY=VALUE
    description: str = ""


def limit(name: str, v: dict[str, Any]) -> Limit:
    """The Limit of a validated queues.yaml `limits:` entry."""
    return Limit(name, v["max"], tuple(v["targets"]), v.get("description", ""))
