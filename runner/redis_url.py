"""REDIS_URL in the forms Celery accepts, as redis-py (runner's store) and kombu (the broker)
each take it: a Unix socket as unix://, redis+socket:// or socket:// (redis-py knows only
unix://, kombu only redis+socket://), and ssl_cert_reqs as required/optional/none or Celery's
CERT_REQUIRED/CERT_OPTIONAL/CERT_NONE (redis-py knows only the first)."""

from __future__ import annotations

import re

_SOCKET_SCHEMES = ("unix", "redis+socket", "socket")
_CERT_REQS = re.compile(r"(?i)(?<=[?&]ssl_cert_reqs=)(?:CERT_)?(required|optional|none)(?=&|#|$)")


def store_url(url: str) -> str:
    """`url` as redis-py takes it."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    if scheme.lower() in _SOCKET_SCHEMES:
        scheme = "unix"
    return f"{scheme}://{_CERT_REQS.sub(lambda m: m[1].lower(), rest)}"


def broker_url(url: str) -> str:
    """`url` as kombu's Redis transport takes it."""
    scheme, _, rest = store_url(url).partition("://")
    return f"redis+socket://{rest}" if scheme == "unix" else store_url(url)
