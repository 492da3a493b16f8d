"""The desired state of a ConfigSet: queues, workers, job routes and beat entries with fire times.

Pure: the clock is an argument. `plan` is what `runner plan --format json` prints.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from runner.config.model import ConfigSet, Schedule, Workflow
from runner.config.semantic import zone
from runner.config.workflows import topological
from runner.schedule import at_fires, cron_fires, every_fires


def next_fires(s: Schedule, now: datetime, count: int) -> list[datetime]:
    """The next `count` fire instants of `s` strictly after `now`, in its own time zone: the
    times its cron (H resolved), every or at gives, each delayed by its jitter offset."""
    tz = zone(s.timezone)
    if tz is None:
        raise ValueError(f"unknown time zone {s.timezone!r}")
    # shifted in UTC: an aware datetime plus a timedelta would move the zone's wall clock
    shift = timedelta(seconds=s.jitter_offset)
    after = now.astimezone(UTC) - shift if now.utcoffset() is not None else now
    if s.hashed_cron is not None:
        fires = cron_fires(s.hashed_cron, tz, after, count)
    elif s.every is not None:
        fires = every_fires(s.every, tz, after, count)
    else:
        assert s.at is not None
        fires = at_fires(datetime.fromisoformat(s.at), tz, after, count)
    return [(f.astimezone(UTC) + shift).astimezone(tz) for f in fires] if shift else fires


def when(s: Schedule) -> str:
    """How a schedule fires, in the user's words: 'cron 30 2 * * *', 'every 5m', 'at ...',
    with what an H resolved to: 'cron H 2 * * * (= 37 2 * * *)'."""
    if s.cron is not None:
        if s.hashed_cron != s.cron:
            return f"cron {s.cron} (= {s.hashed_cron})"
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
    """What the configuration asks for: queues and who serves them, targets, jobs and the next
    `count` firings of each schedule."""
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
        "schedules": {s.name: {**_runs(config, s), "when": when(s), "timezone": s.timezone,
                               "overlap": s.overlap,
                               "jitter": s.jitter, "jitter_offset": s.jitter_offset,
                               "next": [t.isoformat() for t in next_fires(s, now, count)]}
                      for s in config.schedules.values()},
        "workflows": {w.name: workflow(w) for w in config.workflows.values()},
    }


def _runs(config: ConfigSet, s: Schedule) -> dict[str, Any]:
    """What a schedule runs: {"job", "queue"}, or {"workflow"} (its nodes have queues)."""
    if s.workflow:
        return {"workflow": s.job}
    return {"job": s.job, "queue": config.jobs[s.job].queue}


def workflow(w: Workflow) -> dict[str, Any]:
    """A workflow as plan shows it: its nodes in run order, each with only what it sets."""
    nodes = {n.name: n for n in w.nodes}
    out: dict[str, Any] = {}
    for name in topological({n.name: n.after for n in w.nodes}):
        n = nodes[name]
        out[name] = {k: v for k, v in (("job", n.job), ("approval", n.approval),
                                       ("limit", n.limit), ("timeout", n.timeout),
                                       ("after", list(n.after)), ("when", n.when)) if v}
    return {"description": w.description, "nodes": out}


def node_text(n: dict[str, Any]) -> str:
    """One node of `workflow` in words: 'job promote, after [approve], limit label:env=prod'."""
    words = [f"job {n['job']}" if "job" in n else f"approval {n['approval']!r}"]
    if n.get("after"):
        words.append(f"after [{', '.join(n['after'])}]")
    if n.get("when", "on_success") != "on_success":
        words.append(f"when {n['when']}")
    if "limit" in n:
        words.append(f"limit {n['limit']}")
    if "timeout" in n:
        t = n["timeout"]
        words.append(f"timeout {duration_text(t) if isinstance(t, int) else t}")
    return ", ".join(words)
