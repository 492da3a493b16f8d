"""`runner run JOB --dry-run`: the resolved targets and the steps that would run.

Secrets appear as their reference and whether it resolves on this machine
(`<secret env:NAME: resolves>`, `<secret file:/x: outside RUNNER_SECRET_DIRS (...)>`), never
as a value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from runner.config.model import ConfigSet, SecretRef, Step, Target
from runner.config.query import lookup, select
from runner.executor.secrets import lookup as lookup_secret
from runner.settings import Settings


def _secret(value: object, env: Mapping[str, str], settings: Settings) -> str:
    if not isinstance(value, SecretRef):
        return str(value)
    return f"<secret {value.ref}: {lookup_secret(value, env, settings)[1]}>"


def _target(t: Target, env: Mapping[str, str], settings: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {"status": "would-run", "transport": t.transport}
    for key in ("host", "port", "user", "key_file", "known_hosts", "password", "passphrase"):
        value = getattr(t, key)
        if value is not None:
            out[key] = _secret(value, env, settings)
    return out


def _step(s: Step) -> dict[str, Any]:
    out: dict[str, Any] = {"name": s.name, "kind": s.kind, "when": s.when}
    if s.kind == "command":
        out["command"] = s.command
    elif s.kind == "script":
        out["script"], out["args"] = s.script, list(s.args)
    else:
        out["src"], out["dest"] = s.src, s.dest
    if s.timeout is not None:
        out["timeout"] = s.timeout
    return out


def describe(config: ConfigSet, name: str, limit: str | None,
             env: Mapping[str, str] | None = None,
             settings: Settings | None = None) -> dict[str, Any]:
    """What would run; each secret reference says whether it resolves with `env` and
    `settings` (by default this process's)."""
    job = lookup(config, name)
    targets = select(config, job, limit)
    env = os.environ if env is None else env
    settings = Settings.from_env(env) if settings is None else settings
    return {
        "run_id": None, "job": job.name, "status": "dry-run", "queue": job.queue,
        "revision": config.revision, "timeout": job.timeout, "concurrency": job.concurrency,
        "retries": {"attempts": job.retries.attempts, "backoff": job.retries.backoff},
        "env": {k: _secret(v, env, settings) for k, v in job.env},
        "targets": {t: _target(config.targets[t], env, settings) for t in targets},
        "steps": [_step(s) for s in job.steps],
    }


def _detail(s: dict[str, Any]) -> str:
    if s["kind"] == "command":
        return str(s["command"])
    if s["kind"] == "script":
        return " ".join([s["script"], *s["args"]])
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
    lines.append("steps:")
    for i, s in enumerate(d["steps"], 1):
        detail = _detail(s)
        when = "" if s["when"] == "on_success" else f"  [{s['when']}]"
        lines.append(f"  {i}. {s['name']}: {s['kind']} {detail}{when}")
    return lines
