"""What `runner api` serves that is not JSON read from the store (the dashboard, the docs
page, the favicon, the dashboard's files) and the cache of GET /api/runs pages."""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from runner.api.auth import Auth
from runner.api.events import Hub

DASHBOARD = Path(__file__).parent.parent / "dashboard"
PAGE_TTL = 1.0  # seconds a cached page of GET /api/runs may live without any event

router = APIRouter()


@dataclass
class RunPages:
    """Pages of GET /api/runs as sent, by query string: kept until a run changes (the hub's
    generation moves), and at most PAGE_TTL seconds should an event be missed. Its
    middleware answers a fresh page to any valid token before FastAPI routes, validates and
    solves dependencies, the bulk of the work of a request through them. A miss goes
    through FastAPI, which validates the query before `get` keeps its page."""

    hub: Hub
    auth: Auth
    pages: dict[bytes, tuple[int, float, bytes]] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def fresh(self, query: bytes) -> bytes | None:
        """The page of `query` if it is still current, else None."""
        hit = self.pages.get(query)
        if hit and hit[0] == self.hub.generation and time.monotonic() - hit[1] <= PAGE_TTL:
            return hit[2]
        return None

    async def get(self, query: bytes, make: Callable[[], bytes]) -> bytes:
        """The page of `query`, made (in a thread) by `make` when none is current."""
        body = self.fresh(query)
        if body is None:
            async with self.lock:  # concurrent misses of a page read the store once
                body = self.fresh(query)
                if body is None:
                    generation = self.hub.generation
                    body = await run_in_threadpool(make)
                    if len(self.pages) >= 256:
                        self.pages.clear()
                    self.pages[query] = (generation, time.monotonic(), body)
        return body

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """`app` with current pages answered before it sees the request."""
        async def serve(scope: Scope, receive: Receive, send: Send) -> None:
            if (scope["type"] == "http" and scope["path"] == "/api/runs"
                    and scope["method"] == "GET"
                    and (body := self.fresh(scope["query_string"])) is not None
                    and self._token_ok(scope["headers"])):
                await send({"type": "http.response.start", "status": 200, "headers": [
                    (b"content-length", b"%d" % len(body)),
                    (b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": body})
                return
            await app(scope, receive, send)
        return serve

    def _token_ok(self, headers: list[tuple[bytes, bytes]]) -> bool:
        for name, value in headers:
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                return scheme.lower() == "bearer" and self.auth.check(token.strip()) is not None
        return False


@router.get("/", include_in_schema=False)
def dashboard() -> FileResponse:
    """The dashboard's page."""
    return FileResponse(DASHBOARD / "index.html")


@router.get("/runs/{name}", include_in_schema=False)
@router.get("/jobs/{name}", include_in_schema=False)
@router.get("/schedules/{name}", include_in_schema=False)
@router.get("/workflows/{name}", include_in_schema=False)
@router.get("/workers/{name}", include_in_schema=False)
def deep(name: str) -> FileResponse:  # the dashboard reads `name` from the URL
    """The dashboard's page at a run's, job's, schedule's, workflow's or worker's own URL: it
    opens what the path names (a reload, a link in a notification)."""
    return FileResponse(DASHBOARD / "index.html")


@router.get("/docs", include_in_schema=False)
def docs() -> FileResponse:
    """Swagger UI (dashboard/docs.html) on the files of fastapi-offline."""
    return FileResponse(DASHBOARD / "docs.html")


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> FileResponse:
    """The dashboard's icon."""
    return FileResponse(DASHBOARD / "favicon.svg", media_type="image/svg+xml")


def mount_static(api: FastAPI) -> None:
    """The dashboard's files under /static (a router cannot carry a mount)."""
    api.mount("/static", StaticFiles(directory=DASHBOARD), name="static")
