"""Firing lateness: how long after its scheduled instant a schedule's run was queued
(`created - scheduled_for` of its record), kept as one Prometheus histogram in the store so
every API process reports the same cumulative counts (like the Kubernetes CronJob
controller's job-creation skew).

Beat calls `observe_lateness` once per batch of queued firings; `summary` is what
`runner status` and `/api/stats` show; `metric_lines` is the exposition.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from runner.store import Store, keys

NAME = "runner_schedule_lateness_seconds"
SCHEDULE = "schedule:"  # a tally field: a schedule's last firing's lateness
BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


def _le(bound: float) -> str:
    return "+Inf" if bound == math.inf else repr(bound)


def lateness_of(record: Mapping[str, Any]) -> float | None:
    """Seconds from a run record's scheduled instant to its creation (None: not a
    schedule's firing). Never below 0: a firing is not queued before its instant."""
    at = record.get("scheduled_for")
    if not at or record.get("created") is None:
        return None
    return max(0.0, float(record["created"]) - datetime.fromisoformat(str(at)).timestamp())


def increments(seconds: Iterable[float]) -> dict[str, float]:
    """What a batch of observations adds to the cumulative histogram: per bucket (`le=`)
    the observations at most its bound, their sum and count."""
    values = list(seconds)
    out = {f"le={_le(b)}": float(sum(v <= b for v in values)) for b in (*BUCKETS, math.inf)}
    out["sum"], out["count"] = float(sum(values)), float(len(values))
    return out


def observe_lateness(store: Store, seconds: list[float], now: float,
                     by_schedule: Mapping[str, float] | None = None) -> None:
    """Adds the lateness of a batch of queued firings to the store's histogram (one store
    call; nothing for an empty batch). `now`: when the batch was queued (last_at);
    `by_schedule`: each schedule's last firing's lateness (kept as `schedule:NAME`)."""
    if seconds:
        store.tally(keys.LATENESS, increments(seconds),
                    {"last": seconds[-1], "last_at": now,
                     **{f"{SCHEDULE}{n}": v for n, v in (by_schedule or {}).items()}})


def by_schedule(tally: Mapping[str, float]) -> dict[str, float]:
    """Each schedule's last queued firing's lateness in seconds, as `observe_lateness` kept
    it."""
    return {k.removeprefix(SCHEDULE): round(v, 3) for k, v in sorted(tally.items())
            if k.startswith(SCHEDULE)}


def quantile(q: float, tally: Mapping[str, float]) -> float | None:
    """Prometheus' histogram_quantile: the bucket holding rank q·count, linearly
    interpolated within it; in the +Inf bucket, the highest finite bound."""
    count = tally.get("count", 0.0)
    if not count:
        return None
    rank, lower, below = q * count, 0.0, 0.0
    for bound in BUCKETS:
        n = tally.get(f"le={_le(bound)}", 0.0)
        if n >= rank:
            return round(lower + (bound - lower) * (rank - below) / (n - below), 3) \
                if n > below else lower
        lower, below = bound, n
    return BUCKETS[-1]


def summary(tally: Mapping[str, float]) -> dict[str, Any]:
    """The histogram as `runner status` and `/api/stats` show it: count, sum, estimated
    p50 and p99, and the last queued firing's lateness and when it was queued."""
    return {"count": int(tally.get("count", 0)), "sum": round(tally.get("sum", 0.0), 3),
            "p50": quantile(0.5, tally), "p99": quantile(0.99, tally),
            "last": tally.get("last"), "last_at": tally.get("last_at"),
            "buckets": {_le(b): int(tally.get(f"le={_le(b)}", 0))
                        for b in (*BUCKETS, math.inf)}}


def metric_lines(tally: Mapping[str, float]) -> list[str]:
    """The histogram in the Prometheus text format (all zero before the first firing)."""
    out = [f"# HELP {NAME} Seconds from a schedule's firing instant to its run being "
           "queued (every firing since the store was created).",
           f"# TYPE {NAME} histogram"]
    for b in (*BUCKETS, math.inf):
        out.append(f'{NAME}_bucket{{le="{_le(b)}"}} {int(tally.get(f"le={_le(b)}", 0))}')
    out.append(f"{NAME}_sum {tally.get('sum', 0.0):.6f}")
    out.append(f"{NAME}_count {int(tally.get('count', 0))}")
    return out
