"""Process settings from the environment, read once into a frozen dataclass and passed down.

Every setting is a RUNNER_* variable; the README lists them. Bad values are a UsageError that
names the variable, never a silent default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from runner.config.model import seconds
from runner.errors import UsageError

MiB = 1024 * 1024


@dataclass(frozen=True)
class Settings:
    redis_url: str = ""                 # REDIS_URL: broker and store; empty: embedded (files)
    output_cap: int = MiB               # bytes of stdout (and of stderr) kept per target: the tail
    download_cap: int = 10 * MiB        # default max_bytes of a download step
    connect_timeout: float = 10.0       # seconds to connect and log in
    ssh_max_sessions: int = 9           # targets per SSH connection: one below sshd's
    #                                     MaxSessions (10), so a cancel can open a kill session
    max_connections_per_host: int = 10  # open connections to one host, all targets together
    idle_timeout: float = 300.0         # pooled connections unused this long are closed
    max_idle_connections: int = 256     # idle pooled connections kept at most (LRU closed)
    breaker_threshold: int = 3          # connect failures in a row that open a target's breaker
    breaker_cooldown: float = 60.0      # seconds a target is skipped once its breaker is open

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, float | int | str] = {"redis_url": env.get("REDIS_URL", "")}
        for f in fields(cls):
            name = f"RUNNER_{f.name.upper()}"
            if f.name == "redis_url":
                continue
            raw = env.get(name)
            if raw is None or raw == "":
                continue
            try:
                number = seconds(int(raw) if raw.isdigit() else raw)
            except ValueError:
                raise UsageError(f"{name}={raw!r} is not a number (or a duration like 30s, "
                                 "5m)") from None
            if number < 1 and f.name != "idle_timeout":
                raise UsageError(f"{name}={raw!r} must be at least 1")
            values[f.name] = number
        return cls(**values)  # type: ignore[arg-type]
