"""Secret references resolved on the machine that runs a job, and what that process knows.

References written in the configuration repository are scoped: `env:NAME` only for names that
match RUNNER_SECRET_ENV, `file:/path` only for files under RUNNER_SECRET_DIRS once symlinks
are resolved, and the value must have at least MIN_SECRET bytes (a shorter one cannot be
masked without showing where its characters are). References in runner's own settings
(RUNNER_API_TOKENS, RUNNER_API_JWT_KEY) are the operator's: `resolve` reads them unscoped.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from fnmatch import fnmatchcase
from pathlib import Path
from urllib.parse import unquote

from runner.adapters.redis_url import passwords
from runner.config.model import SecretRef
from runner.errors import SecretUnavailable
from runner.settings import Settings

MIN_SECRET = 4  # bytes


def resolve(ref: SecretRef, who: str, env: Mapping[str, str]) -> str:
    """The value behind env:NAME or file:/path, unscoped (runner's own settings); `who`
    needs it."""
    if ref.scheme == "env":
        value = env.get(ref.name)
        if value is None:
            raise SecretUnavailable(who, f"{who}: secret {ref.ref} is not set in the worker's "
                                         "environment")
        return value
    try:
        with open(ref.name, encoding="utf-8") as f:
            return f.read().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as e:
        raise SecretUnavailable(who, f"{who}: secret {ref.ref} cannot be read "
                                     f"({type(e).__name__})") from None


def _under(path: str, dirs: tuple[str, ...]) -> bool:
    return any(os.path.commonpath([path, d]) == d for d in map(os.path.realpath, dirs))


def lookup(ref: SecretRef, env: Mapping[str, str], settings: Settings
           ) -> tuple[str | None, str, str]:
    """A reference written in the repository, on this machine: (value, "resolves", "") or
    (None, why it does not, how to fix it). A file's bytes that are not UTF-8 come as
    surrogate escapes (os.fsencode gives them back)."""
    if ref.scheme == "env":
        scope = ", ".join(settings.secret_env)
        if not any(fnmatchcase(ref.name, glob) for glob in settings.secret_env):
            return None, f"outside RUNNER_SECRET_ENV ({scope})", (
                "; name a variable that matches it or widen RUNNER_SECRET_ENV")
        value = env.get(ref.name)
        if value is None:
            return None, "not set", " in the worker's environment"
    else:
        real = os.path.realpath(ref.name)
        if not _under(real, settings.secret_dirs):
            return None, f"outside RUNNER_SECRET_DIRS ({', '.join(settings.secret_dirs)})", (
                " once symlinks are resolved; put the file there or widen RUNNER_SECRET_DIRS")
        try:
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as f:
                value = os.fsdecode(f.read().rstrip(b"\r\n"))
        except OSError as e:
            return None, f"unreadable ({type(e).__name__})", ""
    if len(os.fsencode(value)) < MIN_SECRET:
        return None, f"shorter than {MIN_SECRET} bytes", (
            ", too short to be masked in output without showing it; use a longer secret")
    return value, "resolves", ""


def config_secret(ref: SecretRef, who: str, env: Mapping[str, str], settings: Settings) -> str:
    """The value of a reference written in the repository; SecretUnavailable names the
    reference and the reason, never a value."""
    value, why, fix = lookup(ref, env, settings)
    if value is None:
        raise SecretUnavailable(who, f"{who}: secret {ref.ref} is {why}{fix}")
    return value


def known_secrets(settings: Settings, env: Mapping[str, str],
                  state_dir: Path | None = None) -> list[str]:
    """What this process knows and a job must never show: the API tokens (with the one
    `runner api` generates into STATE_DIR/api-token), the JWT key and the Redis password, as
    far as they resolve here (those shorter than MIN_SECRET are left out: they are never in a
    job's environment, and masking them would show their shape)."""
    refs = [ref for _, _, ref in settings.api_tokens]
    refs += [settings.api_jwt_key] if settings.api_jwt_key else []
    refs += [f"file:{state_dir / 'api-token'}"] if state_dir else []
    found = []
    for ref in refs:
        with contextlib.suppress(SecretUnavailable):  # the API's; this process may lack it
            found.append(resolve(SecretRef(ref), "settings", env))
    for password in passwords(settings.redis_url):  # the master's and the Sentinels'
        found += [password, unquote(password)]
    return [s for s in found if len(s.encode("utf-8", "surrogateescape")) >= MIN_SECRET]


def runner_own(name: str, settings: Settings) -> bool:
    """A variable that never reaches a job's environment: REDIS_URL, RUNNER_*, a name in
    the secret scope, a name runner's settings reference."""
    own = {ref.partition(":")[2] for _, _, ref in settings.api_tokens if ref.startswith("env:")}
    if settings.api_jwt_key.startswith("env:"):
        own.add(settings.api_jwt_key[4:])
    return (name in own or name == "REDIS_URL" or name.startswith("RUNNER_")
            or any(fnmatchcase(name, glob) for glob in settings.secret_env))
