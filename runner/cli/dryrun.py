"""`runner run JOB --dry-run`: the resolved targets and the steps that would run; of a
WORKFLOW: its nodes in run order, each job node with its targets.

Secrets appear as their reference and whether it resolves on this machine
(`<secret env:NAME: resolves>`, `<secret file:/x: outside RUNNER_SECRET_DIRS (...)>`), never
as a value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from runner.config.http import http_plan, http_text
from runner.config.model import ConfigSet, SecretRef, Step, Target
from runner.config.params import env as param_env
from runner.config.query import lookup, select
from runner.config.workflows import topological
from runner.desired import duration_text
from runner.executor.secrets import lookup as lookup_secret
from runner.settings import Settings


def _secret(value: object, env: Mapping[str, str], settings: Settings) -> str:
    if not isinstance(value, SecretRef):
        return str(value)
    return f"<secret {value.ref}: {lookup_secret(value, env, settings)[1]}>"


def _target(t: Target, env: Mapping[str, str], settings: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {"status": "would-run", "transport": t.transport}
    for key in ("host", "port", "user", "key_file", "known_hosts", "password", "passphrase",
                "base_url"):
        value = getattr(t, key)
        if value is not None:
            out[key] = _secret(value, env, settings)
    return out


def _step(s: Step, env: Mapping[str, str], settings: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {"name": s.name, "kind": s.kind, "when": s.when}
    if s.kind == "command":
        out["command"] = s.command
    elif s.kind == "script":
        out["script"], out["args"] = s.script, list(s.args)
    elif s.http is not None:
        out["http"] = {**http_plan(s.http), "headers": {
            k: _secret(v, env, settings) for k, v in s.http.headers}}
    else:
        out["src"], out["dest"] = s.src, s.dest
    if s.timeout is not None:
        out["timeout"] = s.timeout
    return out


def describe(config: ConfigSet, name: str, limit: str | None,
             env: Mapping[str, str] | None = None,
             settings: Settings | None = None,
             params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What would run (with `params`, the run's checked values); each secret reference
    says whether it resolves with `env` and `settings` (by default this process's)."""
    job = lookup(config, name)
    targets = select(config, job, limit)
    env = os.environ if env is None else env
    settings = Settings.from_env(env) if settings is None else settings
    return {
        "run_id": None, "job": job.name, "status": "dry-run", "queue": job.queue,
        "revision": config.revision, "timeout": job.timeout, "concurrency": job.concurrency,
        "retries": {"attempts": job.retries.attempts, "backoff": job.retries.backoff},
        "env": {k: _secret(v, env, settings) for k, v in job.env},
        "params": dict(params) if params is not None else None,
        "targets": {t: _target(config.targets[t], env, settings) for t in targets},
        "steps": [_step(s, env, settings) for s in job.steps],
    }


def _detail(s: dict[str, Any]) -> str:
    if s["kind"] == "command":
        return str(s["command"])
    if s["kind"] == "script":
        return " ".join([s["script"], *s["args"]])
    if s["kind"] == "http":
        return http_text(s["http"])
    if s["kind"] == "upload":
        return f"{s['src']} -> {s['dest']}"
    return str(s["src"])


def render(d: dict[str, Any]) -> list[str]:
    """A dry run as the lines `runner run --dry-run` prints."""
    lines = [f"dry run of job {d['job']} on queue {d['queue']} at revision {d['revision']} "
             f"(nothing is run)",
             f"targets ({len(d['targets'])}, {d['concurrency']} at a time, timeout "
             f"{d['timeout']}s each, {d['retries']['attempts']} retries):"]
    for name, t in d["targets"].items():
        where = f"{t.get('user', '') + '@' if t.get('user') else ''}{t.get('host', '')}"
        lines.append(f"  {name:<24} {t['transport']:<6} {where}".rstrip())
    if d["env"]:
        lines.append("env: " + " ".join(f"{k}={v}" for k, v in d["env"].items()))
    if d["params"] is not None:
        lines.append("params: " + " ".join(f"{k}={v}" for k, v in param_env(
            d["params"]).items()))
    lines.append("steps:")
    for i, s in enumerate(d["steps"], 1):
        detail = _detail(s)
        when = "" if s["when"] == "on_success" else f"  [{s['when']}]"
        lines.append(f"  {i}. {s['name']}: {s['kind']} {detail}{when}")
    return lines


def describe_workflow(config: ConfigSet, name: str) -> dict[str, Any]:
    """What a run of workflow `name` would start: its nodes in run order, each job node with
    the targets it would run on (its job's, narrowed by the node's limit)."""
    w = config.workflows[name]
    nodes = {n.name: n for n in w.nodes}
    out = []
    for n in (nodes[x] for x in topological({n.name: n.after for n in w.nodes})):
        node: dict[str, Any] = {"name": n.name, "kind": "job" if n.job else "approval",
                                "after": list(n.after), "when": n.when}
        if n.job is not None:
            job = lookup(config, n.job)
            node.update(job=job.name, queue=job.queue, limit=n.limit,
                        targets=select(config, job, n.limit))
        else:
            node.update(question=n.approval, timeout=n.timeout)
        out.append(node)
    return {"run_id": None, "workflow": w.name, "status": "dry-run",
            "revision": config.revision, "description": w.description, "nodes": out}


def render_workflow(d: dict[str, Any]) -> list[str]:
    """A workflow's dry run as the lines `runner run WORKFLOW --dry-run` prints."""
    lines = [f"dry run of workflow {d['workflow']} at revision {d['revision']} (nothing is run)",
             f"nodes in run order ({len(d['nodes'])}):"]
    for i, n in enumerate(d["nodes"], 1):
        if n["kind"] == "job":
            limit = f", limit {n['limit']}" if n["limit"] else ""
            what = f"job {n['job']} on queue {n['queue']}{limit}"
        else:
            wait = f", rejected after {duration_text(n['timeout'])}" if n["timeout"] else ""
            what = f"approval {n['question']!r}{wait}"
        after = f", after [{', '.join(n['after'])}] when {n['when']}" if n["after"] else (
            "" if n["when"] == "on_success" else f", when {n['when']}")
        lines.append(f"  {i}. {n['name']}: {what}{after}")
        if n["kind"] == "job":
            lines.append(f"       targets ({len(n['targets'])}): {', '.join(n['targets'])}")
    return lines
