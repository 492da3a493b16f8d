"""Process settings from the environment, read once into a frozen dataclass and passed down.

Every setting is a RUNNER_* variable; the README lists them. Bad values are a UsageError that
names the variable, never a silent default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from runner.adapters.redis_url import store_url
from runner.config.model import seconds
from runner.errors import UsageError

MiB = 1024 * 1024


@dataclass(frozen=True)
class Settings:
    """What the environment sets (REDIS_URL, RUNNER_*): one frozen value every process reads
    once."""

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
    keep_runs: float = 30 * 86400       # seconds run records stay in the store once published
    # RUNNER_LIMIT_WAIT_MAX: seconds a run may wait for its cluster-wide slots before it fails
    # (added to the time limit of the runs that take slots)
    limit_wait_max: float = 86400.0
    # RUNNER_API_TOKENS: bearer tokens of `runner api`, as (role, name, env:/file: reference)
    api_tokens: tuple[tuple[str, str, str], ...] = ()
    api_jwt_key: str = ""               # RUNNER_API_JWT_KEY: env:/file: reference to a JWT key
    api_jwt_max_lifetime: float = 3600.0  # seconds from a JWT's iat (or now) to its exp, at most
    api_jwt_audience: str = ""          # RUNNER_API_JWT_AUDIENCE: the `aud` a JWT must name
    api_jwt_issuer: str = ""            # RUNNER_API_JWT_ISSUER: the `iss` a JWT must have
    # RUNNER_API_ALLOWED_HOSTS: Host names the API answers besides localhost and its address
    api_allowed_hosts: tuple[str, ...] = ()
    # RUNNER_LOCAL_ENV: names or globs of the worker's variables that local jobs get beyond
    # the clean environment (PATH, HOME, USER, LOGNAME, SHELL, LANG, LC_*, TZ)
    local_env: tuple[str, ...] = ()
    # RUNNER_SECRET_ENV: globs of the variables an env: reference in the repository may name
    secret_env: tuple[str, ...] = ("RUNNER_SECRET_*",)
    # RUNNER_SECRET_DIRS: directories a file: reference in the repository may read under
    # (symlinks resolved); from_env adds $CREDENTIALS_DIRECTORY (systemd) to the default
    secret_dirs: tuple[str, ...] = ("/run/secrets", "/etc/runner/secrets")
    # RUNNER_REQUIRE_SIGNED: a keyring (allowed_signers file or GnuPG home); set, only signed
    # revisions the reconciler applied run, never the --repo directory
    require_signed: str = ""
    # RUNNER_PUBLIC_URL: where people open the dashboard (https://runner.example.com); the
    # run links in notifications start with it (empty: messages carry no link)
    public_url: str = ""
    # RUNNER_COMMIT_URL: a commit's web page, {sha} standing for its id
    # (https://github.com/ORG/REPO/commit/{sha}); the job page links its revision there
    commit_url: str = ""
    notify_attempts: int = 5            # tries of one notification before it is given up
    notify_backoff: float = 5.0         # seconds before the 2nd try, doubling (5+10+20+40 s)
    notify_timeout: float = 10.0        # seconds one try may take (connect and send)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, object] = {"redis_url": store_url(env.get("REDIS_URL", "")),
                                     "api_tokens": api_tokens(env.get("RUNNER_API_TOKENS", "")),
                                     "api_jwt_key": secret_ref("RUNNER_API_JWT_KEY",
                                                               env.get("RUNNER_API_JWT_KEY", "")),
                                     **_scopes(env)}
        for text in ("api_jwt_audience", "api_jwt_issuer"):
            values[text] = env.get(f"RUNNER_{text.upper()}", "").strip()
        values["api_allowed_hosts"] = allowed_hosts(env.get("RUNNER_API_ALLOWED_HOSTS", ""))
        values["require_signed"] = env.get("RUNNER_REQUIRE_SIGNED", "")
        values["public_url"] = env.get("RUNNER_PUBLIC_URL", "").strip().rstrip("/")
        values["commit_url"] = commit_url(env.get("RUNNER_COMMIT_URL", "").strip())
        for f in fields(cls):
            name = f"RUNNER_{f.name.upper()}"
            if f.name in values:
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


ROLES = ("viewer", "operator")


def commit_url(raw: str) -> str:
    """RUNNER_COMMIT_URL checked: empty, or a URL with {sha} in it."""
    if raw and "{sha}" not in raw:
        raise UsageError(f"RUNNER_COMMIT_URL={raw!r} has no {{sha}}; write where a commit is "
                         "shown with {sha} for its id, e.g. https://github.com/ORG/REPO/commit/{sha}")
    return raw


def _items(raw: str) -> tuple[str, ...]:
    return tuple(i.strip() for i in raw.split(",") if i.strip())


def _scopes(env: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """RUNNER_LOCAL_ENV, RUNNER_SECRET_ENV and RUNNER_SECRET_DIRS (comma-separated); unset or
    empty: the defaults."""
    out = {"local_env": _items(env.get("RUNNER_LOCAL_ENV", ""))}
    if _items(env.get("RUNNER_SECRET_ENV", "")):
        out["secret_env"] = _items(env["RUNNER_SECRET_ENV"])
    dirs = _items(env.get("RUNNER_SECRET_DIRS", ""))
    for d in dirs:
        if not d.startswith("/"):
            raise UsageError(f"RUNNER_SECRET_DIRS: {d!r} is not an absolute path; give "
                             "directories like /run/secrets, separated by commas")
    if not dirs:
        systemd = env.get("CREDENTIALS_DIRECTORY", "")
        dirs = (*Settings.secret_dirs, *([systemd] if systemd.startswith("/") else []))
    out["secret_dirs"] = dirs
    return out


def masked_url(url: str) -> str:
    """`url` with its passwords (if any) as `**`, as Celery prints broker URLs: for logs,
    errors and status, which must never show a secret. Sentinel URLs: each `;`-separated
    URL's, and sentinel_password."""
    import re
    from urllib.parse import urlsplit, urlunsplit

    out = []
    for part in url.split(";"):
        try:
            parts = urlsplit(part)
            password = parts.password
        except ValueError:
            return "<a URL that cannot be parsed>"
        if password:
            host = parts.netloc.rpartition("@")[2]
            part = urlunsplit(parts._replace(netloc=f"{parts.username or ''}:**@{host}"))
        out.append(re.sub(r"(?<=[?&]sentinel_password=)[^&#]*", "**", part))
    return ";".join(out)


def secret_ref(variable: str, raw: str) -> str:
    """`raw` if it is an env:NAME or file:/absolute/path reference (or empty); never echoes a
    value that is not a reference, since it may be the secret itself."""
    raw = raw.strip()
    scheme, _, rest = raw.partition(":")
    if raw and not ((scheme == "env" and rest) or (scheme == "file" and rest.startswith("/"))):
        raise UsageError(f"{variable} must be a reference, env:NAME or file:/absolute/path, "
                         "not a value (the value is not shown)")
    return raw


def api_tokens(raw: str) -> tuple[tuple[str, str, str], ...]:
    """RUNNER_API_TOKENS: comma-separated ROLE=REF or ROLE:NAME=REF (NAME shows who acted)."""
    out = []
    for i, item in enumerate(p.strip() for p in raw.split(",") if p.strip()):
        who, eq, ref = item.partition("=")
        role, _, name = who.strip().partition(":")
        if not eq or role not in ROLES:
            raise UsageError(f"RUNNER_API_TOKENS entry {i + 1} must be ROLE=REF or "
                             f"ROLE:NAME=REF with ROLE one of {', '.join(ROLES)} and REF "
                             "env:NAME or file:/path, e.g. operator:alice=env:ALICE_TOKEN")
        out.append((role, name.strip() or f"{role}-{i + 1}",
                    secret_ref(f"RUNNER_API_TOKENS entry {i + 1}", ref)))
    return tuple(out)


def allowed_hosts(raw: str) -> tuple[str, ...]:
    """RUNNER_API_ALLOWED_HOSTS: comma-separated host names or addresses, without port."""
    out = []
    for item in (p.strip().lower() for p in raw.split(",") if p.strip()):
        host = item[1:-1] if item.startswith("[") and item.endswith("]") else item
        if not host or any(c in host for c in "/@[] ") or (":" in host and not _ipv6(host)):
            raise UsageError(f"RUNNER_API_ALLOWED_HOSTS entry {item!r} is not a host name; "
                             "give names or addresses without scheme or port, e.g. "
                             "runner.example.com,192.0.2.7")
        out.append(host)
    return tuple(out)


def _ipv6(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return False
    return True
