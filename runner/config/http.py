"""The `http` step (a request the worker sends for each target) and `transport: http` targets:
the record, its builder, and the checks of one step or target alone (semantic.py calls them).

`$TARGET_HOST` and `$TARGET_NAME` (or `${...}`) are the only substitutions, in the url, the
header values and the body. A url starting with '/' is joined to the target's base_url.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from runner.config.documents import Path
from runner.config.values import SecretRef, is_secret_ref, seconds

DEFAULT_TIMEOUT = 10  # seconds
DEFAULT_REDIRECTS = 5
_PLACEHOLDER = re.compile(r"\$(?:\{(TARGET_HOST|TARGET_NAME)\}|(TARGET_HOST|TARGET_NAME)\b)")
_REF = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:/.+)$")
# keys of a target that reach a host by ssh or winrm, none of which an http target has
_HOST_KEYS = ("host", "port", "user", "key_file", "passphrase", "password", "known_hosts",
              "scheme", "auth", "shell")


@dataclass(frozen=True)
class HttpCheck:
    """One HTTP request and the statuses that make it succeed (none given: any 2xx)."""

    url: str
    method: str = "GET"
    headers: tuple[tuple[str, str | SecretRef], ...] = ()
    body: str | None = None
    expect: tuple[int, ...] = ()
    timeout: int = DEFAULT_TIMEOUT
    ca_file: str | None = None
    max_redirects: int = DEFAULT_REDIRECTS


def http_check(v: dict[str, Any]) -> HttpCheck:
    """The HttpCheck of a validated step's `http:` mapping."""
    headers = tuple((k, SecretRef(x) if is_secret_ref(x) else str(x))
                    for k, x in v.get("headers", {}).items())
    return HttpCheck(v["url"], v.get("method", "GET"), headers, v.get("body"),
                     tuple(v.get("expect", ())), seconds(v.get("timeout", DEFAULT_TIMEOUT)),
                     v.get("ca_file"), v.get("max_redirects", DEFAULT_REDIRECTS))


def substitute(text: str, host: str, name: str) -> str:
    """`text` with $TARGET_HOST / ${TARGET_HOST} and $TARGET_NAME / ${TARGET_NAME} replaced."""
    return _PLACEHOLDER.sub(lambda m: host if "HOST" in m.group(0) else name, text)


def url_host(host: str) -> str:
    """A host as it is written in a URL: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def url_error(url: str) -> str | None:
    """Why `url` (placeholders substituted by examples) is not an http(s) URL or a path, or
    None."""
    if url.startswith("/"):
        return None if not url.startswith("//") else "starts with '//'; write https://HOST/..."
    parts = urlsplit(substitute(url, "host.example", "name"))
    try:
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        return "has a port that is not a number from 0 to 65535"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ("is neither an http(s) URL nor a path; write https://$TARGET_HOST/health, or "
                "/health on targets with a base_url")
    if parts.fragment or any(c.isspace() for c in url):
        return "has a fragment (#...) or a space; remove it"
    return _userinfo(parts.netloc)


def _userinfo(netloc: str) -> str | None:
    if "@" in netloc:
        return ("holds credentials (user@ or user:password@), which output would show; send "
                "them in a header whose value is a secret reference")
    return None


def step_errors(at: Path, what: str, v: dict[str, Any]) -> list[tuple[Path, str, bool]]:
    """Findings of one step's well-shaped `http:` mapping."""
    out: list[tuple[Path, str, bool]] = []
    url = v.get("url")
    if isinstance(url, str) and (problem := url_error(url)):
        shown = "" if "@" in url else f" {url!r}"  # never echo credentials
        out.append(((*at, "url"), f"{what}: url{shown} {problem}", False))
    headers = v.get("headers")
    for key, value in (headers.items() if isinstance(headers, dict) else ()):
        if is_secret_ref(value) and not _REF.match(value):
            out.append(((*at, "headers", key), f"{what}: header {key!r} looks like a secret "
                        "reference but is malformed; write env:NAME or file:/absolute/path",
                        False))
    timeout = v.get("timeout")
    if isinstance(timeout, int | str) and _zero(timeout):
        out.append(((*at, "timeout"), f"{what}: http timeout must be more than 0", False))
    return out


def _zero(value: int | str) -> bool:
    try:
        return seconds(value) == 0
    except ValueError:
        return False


def target_errors(name: str, v: dict[str, Any]) -> list[tuple[Path, str, bool]]:
    """Findings of one target about transport http and base_url."""
    base: Path = ("targets", name)
    if v.get("transport") != "http":
        return [((*base, "base_url"), f"target {name!r}: 'base_url' only applies to transport "
                 "http", True)] if "base_url" in v else []
    out: list[tuple[Path, str, bool]] = []
    url = v.get("base_url")
    if isinstance(url, str) and (problem := _userinfo(urlsplit(url).netloc)):
        out.append(((*base, "base_url"), f"target {name!r}: base_url {problem}", False))
    if "base_url" not in v:
        out.append((base, f"target {name!r} uses transport http and needs 'base_url', like "
                          "https://api.example.com", True))
    out += [((*base, k), f"target {name!r} uses transport http: {k!r} does not apply (an "
             "http target has no shell; it is reached at its base_url)", True)
            for k in _HOST_KEYS if k in v]
    return out


def http_plan(check: HttpCheck) -> dict[str, Any]:
    """What an http step would send, for a dry run (a secret header as its reference)."""
    return {"method": check.method, "url": check.url,
            "headers": {k: str(v) for k, v in check.headers},
            "body": check.body, "expect": list(check.expect) or "2xx",
            "timeout": check.timeout, "ca_file": check.ca_file,
            "max_redirects": check.max_redirects}


def http_text(plan: dict[str, Any]) -> str:
    """A dry run's http step in one line: METHOD URL, its headers' names, what it expects."""
    expect = plan["expect"]
    parts = [plan["method"], plan["url"]]
    parts += [f"[headers: {', '.join(plan['headers'])}]"] if plan["headers"] else []
    parts += [f"expect {expect if isinstance(expect, str) else ' or '.join(map(str, expect))}"]
    return " ".join(parts + ([f"ca_file {plan['ca_file']}"] if plan["ca_file"] else []))
