"""The FastAPI app of `runner api`, assembled by create_api(system, auth) (no module-level
app): the shared Context in app.state, the routers, the run pages' middleware, library
errors answered 503, the events hub and the workers' poller started with the app; and
`serve`, which puts it behind the Host guard on uvicorn."""

import asyncio
import contextlib
import gc
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from runner.api import approvals, control, detail, live, metrics, output, pages, read
from runner.api.auth import Auth, load_auth
from runner.api.context import Context, Control
from runner.api.events import Hub
from runner.errors import ConfigInvalid, ReportError, RunnerError, StoreUnavailable, UsageError
from runner.ops import overview
from runner.store.generation import Generation
from runner.system import System

log = logging.getLogger("runner.api")


def build_context(system: System, auth: Auth, workers_every: float = 2.0) -> Context:
    """What the routes share: the events hub, the workers' poller (every `workers_every`
    seconds while someone watches), the Celery app and the caches of `system`."""
    run_metrics = overview.RunMetrics()
    hub = Hub(system.store, system.settings.redis_url, on_run=run_metrics.observe)
    control_ = Control(system)
    workers = overview.Workers(control_.inspector, system.store, workers_every,
                               on_change=lambda view: hub.broadcast_threadsafe(
                                   {"kind": "workers", "workers": view}),
                               watched=lambda: bool(hub.clients))
    return Context(system, auth, control_, hub, workers, run_metrics,
                   pages.RunPages(hub, auth), Generation("api", log))


def create_api(system: System, auth: Auth, workers_every: float = 2.0) -> FastAPI:
    """The app of `runner api` on `system`, letting in the tokens of `auth`."""
    ctx = build_context(system, auth, workers_every)
    # /docs: Swagger UI from the files fastapi-offline ships, under /docs/static, so the page
    # loads nothing from other hosts (no CDN, no online validator badge); the page is ours
    # (dashboard/docs.html), started by a script file: no inline script for the CSP to allow.
    # No /redoc: ReDoc always fetches its footer logo from its CDN.
    api = FastAPIOffline(docs_url=None, redoc_url=None, title="runner", version="1",
                         lifespan=_lifespan,
                         description="Monitoring and control of runner: runs, workers, queues, "
                                     "schedules; live events on WS /api/events.",
                         default_response_class=JSONResponse, static_url="/docs/static")
    api.state.context = ctx
    api.add_middleware(ctx.pages.middleware)
    api.exception_handler(RunnerError)(_runner_error)
    api.exception_handler(KombuError)(_broker_error)
    api.exception_handler(RedisError)(_redis_error)
    for module in (read, detail, output, control, approvals, live, metrics, pages):
        api.include_router(module.router)
    pages.mount_static(api)
    return api


@asynccontextmanager
async def _lifespan(api: FastAPI) -> AsyncIterator[None]:
    ctx: Context = api.state.context
    task = asyncio.create_task(ctx.hub.run())
    ctx.workers.start()
    gc.freeze()  # what startup built lives on: a full collection no longer walks it
    try:
        yield
    finally:
        ctx.workers.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _runner_error(_r: Request, e: RunnerError) -> JSONResponse:
    code = 503 if isinstance(e, ConfigInvalid | StoreUnavailable | ReportError) else 400
    detail = ("the configuration is invalid and none is applied: "
              + "; ".join(p.text() for p in e.problems[:5])
              if isinstance(e, ConfigInvalid) else str(e))
    return JSONResponse({"detail": detail}, code)


async def _broker_error(_r: Request, e: KombuError) -> JSONResponse:
    return JSONResponse({"detail": f"the broker cannot be reached: {e}"}, 503)


async def _redis_error(_r: Request, e: RedisError) -> JSONResponse:
    return JSONResponse({"detail": f"the store cannot be reached: {e}"}, 503)


def parse_bind(bind: str, option: str = "--bind") -> tuple[str, int]:
    """HOST and PORT of `bind`; a UsageError naming `option` unless it is HOST:PORT."""
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"{option} {bind!r} is not HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]") or "127.0.0.1", int(port)


def check_listen(host: str, port: int, option: str = "--bind") -> None:
    """A UsageError unless HOST:PORT can be listened on now (bound as uvicorn binds it)."""
    listen(host, port, option).close()


def listen(host: str, port: int, option: str = "--bind") -> socket.socket:
    """A socket listening on HOST:PORT (bound as uvicorn binds it), or a UsageError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        s.listen(2048)
        return s
    except OSError as e:
        s.close()
        said = (e.strerror or str(e)).lower()
        raise UsageError(f"cannot listen on {host}:{port}: {said}; pass {option} HOST:PORT "
                         "(a free port, or an address of this machine)") from None


def serve(system: System, bind: str) -> None:
    """`runner api`: the app behind its Host guard, on uvicorn at `bind`, until stopped."""
    import click
    import uvicorn

    from runner.api.guard import LOCAL_HOSTS, guard

    host, port = parse_bind(bind)
    auth, generated = load_auth(system.settings, system.state_dir)
    sock = listen(host, port)  # listening before it says so: a client may connect at once
    api = guard(create_api(system, auth),
                (*LOCAL_HOSTS, host, *system.settings.api_allowed_hosts))
    where = f"http://{host if ':' not in host else f'[{host}]'}:{port}/"
    click.echo(f"api: dashboard and API on {where} (OpenAPI at {where}docs)", err=True)
    if generated:
        click.echo(f"api: no RUNNER_API_TOKENS: an operator token is in {generated}", err=True)
    config = uvicorn.Config(api, host=host, port=port, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
