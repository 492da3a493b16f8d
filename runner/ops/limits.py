"""Who holds and who waits for each cluster-wide limit (`runner status`, GET /api/limits, the
dashboard) and its metrics: the configured ones (named limits, targets' max_runs, jobs'
max_active) and any other the store still has a semaphore of."""

from __future__ import annotations

from typing import Any

from runner.config.model import ConfigSet
from runner.store import Store


def configured(config: ConfigSet) -> dict[str, int]:
    """Each limit of the configuration by the name its semaphore has: its max."""
    return {**{f"limit {n}": lim.max for n, lim in config.limits.items()},
            **{f"target {n}": t.max_runs for n, t in config.targets.items() if t.max_runs},
            **{f"job {n}": j.max_active for n, j in config.jobs.items() if j.max_active}}


def view(store: Store, config: ConfigSet) -> dict[str, dict[str, Any]]:
    """Per limit, by name: max, holders and waiters (oldest first), each {run_id, target
    (None: the run as a whole), worker, since}."""
    states, conf = store.slots(), configured(config)
    out = {}
    for name, most in sorted({**{n: s["max"] for n, s in states.items()}, **conf}.items()):
        state = states.get(name) or {"holders": {}, "queue": []}
        held = sorted(({"id": h, **e} for h, e in state["holders"].items()),
                      key=lambda e: e["since"])
        out[name] = {"max": most,
                     "held": [_who(e) for e in held],
                     "waiting": [_who(e) for e in state["queue"]]}
    return out


def _who(entry: dict[str, Any]) -> dict[str, Any]:
    run_id, _, target = str(entry["id"]).partition("/")
    return {"run_id": run_id, "target": target or None, "worker": entry.get("owner"),
            "since": entry.get("since")}


def metric_lines(limits: dict[str, dict[str, Any]]) -> list[str]:
    """runner_limit_held{limit} and runner_limit_waiting{limit}, in Prometheus text."""
    lines = []
    for metric, key, what in (("held", "held", "slots held"),
                              ("waiting", "waiting", "runs waiting for a slot")):
        lines += [f"# HELP runner_limit_{metric} Cluster-wide limits: {what}.",
                  f"# TYPE runner_limit_{metric} gauge"]
        lines += [f'runner_limit_{metric}{{limit="{_label(n)}"}} {len(v[key])}'
                  for n, v in limits.items()]
    return lines


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
