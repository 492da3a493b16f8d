"""What the routes of `runner api` share (one Context, kept in app.state.context by
create_api) and the dependencies that hand it and the caller's Principal to a route: a
router needs nothing but an app whose state holds a Context."""

import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from runner.api.auth import Auth, Principal
from runner.api.events import Hub
from runner.api.pages import RunPages
from runner.celery.app import create_app
from runner.config.model import ConfigSet
from runner.ops import overview
from runner.store import Store
from runner.store.generation import Generation
from runner.system import System


class Control:
    """The Celery app the API enqueues and cancels with, kept on the configuration the
    system runs (re-read at most every system.RELOAD seconds)."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.lock = threading.Lock()
        self._app: Any = None

    def config(self) -> ConfigSet:
        """The configuration the system runs."""
        with self.lock:
            return self.system.config()

    def app(self) -> tuple[Any, ConfigSet]:
        """The Celery app, set to the configuration the system runs, and that one."""
        config = self.config()
        with self.lock:
            if self._app is None:
                self._app = create_app(self.system, config)
            self._app.conf.runner_config = config
            return self._app, config

    @contextlib.contextmanager
    def inspector(self) -> Iterator[Any]:
        """Celery's remote control on a connection of its own: not shared with requests."""
        app = self.app()[0]
        with app.connection_for_write() as conn:
            yield app.control.inspect(timeout=1.0, connection=conn)


@dataclass
class Cache:
    """Answers reused for a few seconds: one thread computes, the others wait for it."""

    entries: dict[Any, tuple[float, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: Any, ttl: float, make: Callable[[], Any]) -> Any:
        """The value of `key` made at most `ttl` seconds ago, or a new one of `make`."""
        now = time.monotonic()
        hit = self.entries.get(key)
        if hit and now - hit[0] < ttl:
            return hit[1]
        with self.lock:
            hit = self.entries.get(key)
            if hit and time.monotonic() - hit[0] < ttl:
                return hit[1]
            value = make()
            self.entries[key] = (time.monotonic(), value)
            return value


@dataclass(frozen=True)
class Context:
    """Everything the routes share: the system, its store's live views and the caches."""

    system: System
    auth: Auth
    control: Control
    hub: Hub
    workers: overview.Workers
    metrics: overview.RunMetrics
    pages: RunPages
    generation: Generation
    cache: Cache = field(default_factory=Cache)

    @property
    def store(self) -> Store:
        """The system's store."""
        return self.system.store


async def context(conn: HTTPConnection) -> Context:  # async: no thread for a lookup
    """The Context of the app serving `conn`."""
    found: Context = conn.app.state.context
    return found


bearer = HTTPBearer(auto_error=False, description="a token of RUNNER_API_TOKENS or a JWT")


def need(role: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller's Principal, 401 without a valid token, 403 when `role` is
    operator and the caller is a viewer."""
    async def check(conn: HTTPConnection, creds: Annotated[
            HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Principal:  # cheap
        auth = (await context(conn)).auth
        who = auth.check(creds.credentials) if creds else None
        if who is None:
            raise HTTPException(401, auth.refusal(creds.credentials) if creds else
                                "a valid bearer token is required",
                                headers={"WWW-Authenticate": "Bearer"})
        if role == "operator" and who.role != "operator":
            raise HTTPException(403, f"{who.name} is a {who.role}; this needs an operator")
        return who
    return check


Ctx = Annotated[Context, Depends(context)]
Viewer = Annotated[Principal, Depends(need("viewer"))]
Operator = Annotated[Principal, Depends(need("operator"))]
