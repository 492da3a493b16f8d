"""REDIS_URL in the forms Celery accepts, as redis-py (runner's store) and kombu (the broker)
each take it: a Unix socket as unix://, redis+socket:// or socket:// (redis-py knows only
unix://, kombu only redis+socket://), ssl_cert_reqs as required/optional/none or Celery's
CERT_REQUIRED/CERT_OPTIONAL/CERT_NONE (redis-py knows only the first), and Redis Sentinel as
Celery's broker takes it, `sentinel://[:PASSWORD@]HOST:PORT[/DB];sentinel://...`, with what
Celery puts in broker_transport_options as query parameters: `master_name` (required),
`sentinel_username` and `sentinel_password` (kombu's sentinel_kwargs)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from runner.errors import UsageError

if TYPE_CHECKING:
    import redis
    import redis.asyncio

_SOCKET_SCHEMES = ("unix", "redis+socket", "socket")
_CERT_REQS = re.compile(r"(?i)(?<=[?&]ssl_cert_reqs=)(?:CERT_)?(required|optional|none)(?=&|#|$)")
_SENTINEL_OPTIONS = ("master_name", "sentinel_username", "sentinel_password")
EXAMPLE = "sentinel://h1:26379;sentinel://h2:26379/0?master_name=mymaster"


@dataclass(frozen=True)
class Sentinel:
    """A parsed sentinel:// REDIS_URL: where the Sentinels are, which master they watch, and
    how to log in to it (username, password, db) and to them (sentinel_*)."""

    hosts: tuple[tuple[str, int], ...]
    master_name: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None

    def sentinel_kwargs(self) -> dict[str, str]:
        """kombu's sentinel_kwargs transport option: how to log in to the Sentinels."""
        out = {"username": self.sentinel_username, "password": self.sentinel_password}
        return {k: v for k, v in out.items() if v}


def sentinel(url: str) -> Sentinel | None:
    """`url` parsed if it names Sentinel (None if not); a UsageError that says what is wrong
    (never the password) if it is not a form kombu and runner both take."""
    parts = [p.strip() for p in url.split(";") if p.strip()]
    if not parts or not parts[0].lower().startswith("sentinel://"):
        return None
    hosts, options, db = [], {}, set()
    for part in parts:
        if not part.lower().startswith("sentinel://"):
            raise UsageError(f"REDIS_URL: {part.partition('@')[2] or part!r} is not a "
                             f"sentinel:// URL; separate Sentinels by ';', e.g. {EXAMPLE}")
        try:
            u = urlsplit(part)
            port = u.port or 26379
        except ValueError:
            raise UsageError(f"REDIS_URL: a Sentinel's address is not HOST:PORT; e.g. "
                             f"{EXAMPLE}") from None
        hosts.append((u.hostname or "127.0.0.1", port))
        path = u.path.strip("/")
        if path and not path.isdigit():
            raise UsageError(f"REDIS_URL: the database {path!r} is not a number; e.g. {EXAMPLE}")
        db.add(int(path or 0))
        for key, value in parse_qsl(u.query):
            if key not in _SENTINEL_OPTIONS:
                raise UsageError(f"REDIS_URL: unknown Sentinel option {key!r}; known: "
                                 f"{', '.join(_SENTINEL_OPTIONS)}")
            options[key] = value
    if not options.get("master_name"):
        raise UsageError(f"REDIS_URL names Sentinels but no master: add "
                         f"?master_name=NAME (the name in `sentinel monitor`), e.g. {EXAMPLE}")
    if len(db) > 1:
        raise UsageError(f"REDIS_URL: the Sentinels name different databases {sorted(db)}; "
                         "give one")
    first = urlsplit(parts[0])
    return Sentinel(tuple(hosts), options["master_name"], db.pop(),
                    unquote(first.username) if first.username else None,
                    unquote(first.password) if first.password else None,
                    options.get("sentinel_username"), options.get("sentinel_password"))


def store_url(url: str) -> str:
    """`url` as redis-py takes it (a sentinel:// URL checked and kept: see client)."""
    if sentinel(url):
        return url
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    if scheme.lower() in _SOCKET_SCHEMES:
        scheme = "unix"
    return f"{scheme}://{_CERT_REQS.sub(lambda m: m[1].lower(), rest)}"


def broker_url(url: str) -> str:
    """`url` as kombu's Redis transport takes it (Sentinel: without the options, which go
    in broker_transport_options)."""
    if s := sentinel(url):
        auth = urlsplit(url.split(";")[0]).netloc.rpartition("@")[0]
        auth = f"{auth}@" if auth else ""
        return ";".join(f"sentinel://{auth}{h}:{p}/{s.db}" for h, p in s.hosts)
    scheme, _, rest = store_url(url).partition("://")
    return f"redis+socket://{rest}" if scheme == "unix" else store_url(url)


def transport_options(url: str) -> dict[str, Any]:
    """What kombu takes in broker_transport_options rather than in the URL."""
    s = sentinel(url)
    if s is None:
        return {}
    return {"master_name": s.master_name,
            **({"sentinel_kwargs": s.sentinel_kwargs()} if s.sentinel_kwargs() else {})}


def passwords(url: str) -> list[str]:
    """Every password in `url` (the master's, as written, the Sentinels'), to keep out of
    output."""
    try:
        found = [p for part in url.split(";") if (p := urlsplit(part).password)]
        s = sentinel(url)
    except (ValueError, UsageError):
        return []
    return found + ([s.sentinel_password] if s and s.sentinel_password else [])


def client(url: str, **kwargs: Any) -> redis.Redis:
    """A redis.Redis on `url`; on Sentinel, one on the master the Sentinels name now, which
    asks them again whenever it reconnects (so it follows a failover)."""
    import redis
    from redis.sentinel import Sentinel as Sentinels  # untyped: Any below

    from runner.adapters.sentinel_pool import FollowingPool

    s = sentinel(url)
    if s is None:
        return redis.Redis.from_url(url, **kwargs)
    timeouts = {k: v for k, v in kwargs.items() if k.startswith("socket_")}
    sentinels: Any = Sentinels(list(s.hosts),  # type: ignore[no-untyped-call]
                               sentinel_kwargs={**timeouts, **s.sentinel_kwargs()})
    return sentinels.master_for(  # type: ignore[no-any-return]
        s.master_name, connection_pool_class=FollowingPool, db=s.db, username=s.username,
        password=s.password, **kwargs)


def async_client(url: str, **kwargs: Any) -> redis.asyncio.Redis:
    """client, for asyncio (redis.asyncio)."""
    import redis.asyncio as aioredis
    from redis.asyncio.sentinel import Sentinel as Sentinels

    s = sentinel(url)
    if s is None:
        return aioredis.Redis.from_url(url, **kwargs)
    timeouts = {k: v for k, v in kwargs.items() if k.startswith("socket_")}
    sentinels: Any = Sentinels(list(s.hosts),  # type: ignore[no-untyped-call]
                               sentinel_kwargs={**timeouts, **s.sentinel_kwargs()})
    return sentinels.master_for(s.master_name, db=s.db, username=s.username,  # type: ignore[no-any-return]
                                password=s.password, **kwargs)
