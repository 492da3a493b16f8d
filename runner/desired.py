"""The desired state of a ConfigSet: queues, workers, job routes and beat entries with fire times.

Pure: the clock is an argument. `plan` is what `runner plan --format json` prints.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from runner.config.model import ConfigSet, Schedule
from runner.config.semantic import zone
from runner.schedule import at_fires, cron_fires, every_fires


def next_fires(s: Schedule, now: datetime, count: int) -> list[datetime]:
    """The next `count` fire instants of `s` strictly after `now`, in its own time zone."""
    tz = zone(s.timezone)
    if tz is None:
        raise ValueError(f"unknown time zone {s.timezone!r}")
    if s.cron is not None:
        return cron_fires(s.cron, tz, now, count)
    if s.every is not None:
        return every_fires(s.every, tz, now, count)
    assert s.at is not None
    return at_fires(datetime.fromisoformat(s.at), tz, now, count)


def when(s: Schedule) -> str:
    """How a schedule fires, in the user's words: 'cron 30 2 * * *', 'every 5m', 'at ...'."""
    if s.cron is not None:
        return f"cron {s.cron}"
    if s.every is not None:
        return f"every {duration_text(s.every)}"
    return f"at {s.at}"


def duration_text(seconds: int) -> str:
    """5400 -> '1h30m', 300 -> '5m', 0 -> '0s': the form the configuration is written in."""
    out, rest = "", seconds
    for unit, name in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        if rest >= unit:
            out += f"{rest // unit}{name}"
            rest %= unit
    return out or "0s"


def plan(config: ConfigSet, now: datetime, count: int) -> dict[str, Any]:
    served: dict[str, list[str]] = {q: [] for q in config.queues}
    for w in config.workers.values():
        for q in w.queues:
            served[q].append(w.name)
    return {
        "revision": config.revision,
        "now": now.isoformat(),
        "queues": {q.name: {"priority": q.priority, "workers": served[q.name]}
                   for q in sorted(config.queues.values(), key=lambda q: (-q.priority, q.name))},
        "workers": {w.name: {"queues": list(w.queues), "concurrency": w.concurrency}
                    for w in config.workers.values()},
        "routes": {j.name: j.queue for j in config.jobs.values()},
        "schedules": {s.name: {"job": s.job, "queue": config.jobs[s.job].queue,
                               "when": when(s), "timezone": s.timezone, "overlap": s.overlap,
                               "next": [t.isoformat() for t in next_fires(s, now, count)]}
                      for s in config.schedules.values()},
    }
