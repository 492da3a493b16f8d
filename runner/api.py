"""`runner api`: the monitoring and control service (FastAPI on uvicorn), built by
create_api(system, auth) — no module-level app.

Reads state (runs, workers, queues, jobs, schedules, revisions, statistics), controls runs
(cancel, retry, trigger a job) and pushes live events over a WebSocket; `/metrics` speaks
Prometheus; `/` serves the dashboard. Definitions stay in git: nothing here edits a job.

Access: a bearer token on every endpoint but /api/health and /metrics. Tokens come from
RUNNER_API_TOKENS (role viewer or operator, values behind env:/file: references) or are JWTs
with a `role` claim verified with RUNNER_API_JWT_KEY (an `exp` within
RUNNER_API_JWT_MAX_LIFETIME; `aud` and `iss` when set). Tokens are compared as SHA-256 digests
in constant time, never logged. With neither set, an operator token is generated once into
STATE_DIR/api-token (mode 0600). Every control action is appended to the run record's
`actions` (who, what, when, via), so it lands in the run's report commit.
"""

import asyncio
import contextlib
import gc
import hashlib
import hmac
import http
import json
import logging
import math
import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, WebSocket, WebSocketDisconnect
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from kombu.exceptions import KombuError
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from runner import api_models as m
from runner import lateness, overview
from runner.celery_app import System, create_app, queue_length
from runner.config.model import ConfigSet, SecretRef
from runner.errors import (
    ConfigInvalid,
    RunnerError,
    SecretUnavailable,
    StoreUnavailable,
    UsageError,
)
from runner.events import Hub
from runner.generation import KEY as GENERATION
from runner.generation import Generation, wiped
from runner.settings import ROLES, Settings
from runner.state import ACTIVE, Cursor

log = logging.getLogger("runner.api")
DASHBOARD = Path(__file__).parent / "dashboard"
NAME = r"^[a-z0-9][a-z0-9._-]{0,62}$"
PAGE_TTL = 1.0  # seconds a cached page of GET /api/runs may live without any event
HEALTH_TTL = 1.0  # seconds an answer of GET /api/health is reused


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    expires: float | None = None  # a JWT's exp: a WebSocket it opened is closed then


@dataclass(frozen=True)
class Auth:
    """Who a bearer token is. Static tokens are kept as SHA-256 digests and all compared
    (constant time, no early exit); a JWT is verified with `jwt_key` when one is set: it
    needs an `exp` at most `max_lifetime` seconds after its `iat` (or now), and the
    `audience` and `issuer` when they are set."""

    tokens: tuple[tuple[str, str, bytes], ...] = ()  # role, name, sha256(token)
    jwt_key: str | None = None
    max_lifetime: float = 3600.0
    audience: str = ""
    issuer: str = ""

    def check(self, token: str) -> Principal | None:
        digest = hashlib.sha256(token.encode("utf-8", "replace")).digest()
        found: Principal | None = None
        for role, name, known in self.tokens:
            if hmac.compare_digest(digest, known) and found is None:
                found = Principal(name, role)
        if found is None and self.jwt_key and token.count(".") == 2:
            jwt = self._jwt(token)
            found = jwt if isinstance(jwt, Principal) else None
        return found

    def refusal(self, token: str) -> str:
        """What a 401 says: why a JWT is refused (never why a static token is)."""
        why = self._jwt(token) if self.jwt_key and token.count(".") == 2 else None
        return "a valid bearer token is required" + (f" ({why})" if isinstance(why, str) else "")

    def _jwt(self, token: str) -> Principal | str:
        import jwt

        key = self.jwt_key or ""
        algorithms = (["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]
                      if key.lstrip().startswith("-----BEGIN") else ["HS256", "HS384", "HS512"])
        try:
            claims = jwt.decode(token, key, algorithms=algorithms, options={"require": ["exp"]},
                                audience=self.audience or None, issuer=self.issuer or None)
        except jwt.InvalidTokenError as e:
            return f"the JWT is refused: {e}"
        exp = float(claims["exp"])
        lifetime = exp - float(claims["iat"] if "iat" in claims else time.time())
        if lifetime > self.max_lifetime:
            return (f"the JWT is valid for {lifetime:.0f} s, longer than "
                    f"RUNNER_API_JWT_MAX_LIFETIME ({self.max_lifetime:.0f} s)")
        role = claims.get("role")
        if role not in ROLES:
            return f"the JWT's role claim must be one of {', '.join(ROLES)}"
        return Principal(str(claims.get("sub") or "jwt"), str(role), exp)


def load_auth(settings: Settings, state_dir: Path,
              env: Mapping[str, str] | None = None) -> tuple[Auth, Path | None]:
    """The Auth of `settings` (references resolved here); with no token and no JWT key, an
    operator token generated once into STATE_DIR/api-token, whose path is returned."""
    from runner.executor.engine import resolve

    env = os.environ if env is None else env
    try:
        tokens = []
        for role, name, ref in settings.api_tokens:
            value = resolve(SecretRef(ref), "RUNNER_API_TOKENS", env)
            if len(value) < 16:
                raise UsageError(f"RUNNER_API_TOKENS: the token of {name} ({ref}) is shorter "
                                 "than 16 characters; use a long random one")
            tokens.append((role, name, hashlib.sha256(value.encode()).digest()))
        key = (resolve(SecretRef(settings.api_jwt_key), "RUNNER_API_JWT_KEY", env)
               if settings.api_jwt_key else None)
    except SecretUnavailable as e:
        raise UsageError(str(e)) from None
    for name, value in (("AUDIENCE", settings.api_jwt_audience),
                        ("ISSUER", settings.api_jwt_issuer)):
        if value and not key:
            raise UsageError(f"RUNNER_API_JWT_{name} is set but RUNNER_API_JWT_KEY is not: "
                             "set the key the JWTs are verified with, or unset it")
    generated = None
    if not tokens and not key:
        generated = state_dir / "api-token"
        if not generated.exists():
            state_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(generated, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32) + "\n")
        value = generated.read_text().strip()
        tokens.append(("operator", "local-operator", hashlib.sha256(value.encode()).digest()))
    return Auth(tuple(tokens), key, settings.api_jwt_max_lifetime, settings.api_jwt_audience,
                settings.api_jwt_issuer), generated


class _Control:
    """The Celery app the API enqueues and cancels with, kept on the configuration the
    system runs (re-read at most every celery_app.RELOAD seconds)."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.lock = threading.Lock()
        self._app: Any = None

    def config(self) -> ConfigSet:
        with self.lock:
            return self.system.config()

    def app(self) -> tuple[Any, ConfigSet]:
        config = self.config()
        with self.lock:
            if self._app is None:
                self._app = create_app(self.system, config)
            self._app.conf.runner_config = config
            return self._app, config


def _cursor(raw: str | None) -> Cursor | None:
    if not raw:
        return None
    created, sep, run_id = raw.partition(":")
    try:
        value = float(created)
    except ValueError:
        value = math.nan
    if not sep or not run_id or not math.isfinite(value):
        raise HTTPException(400, f"cursor {raw[:80]!r} is not one this API gave (CREATED:RUN_ID)")
    return value, run_id


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI description of refusals: {"detail": why}."""
    return {code: {"model": m.Detail, "description": http.HTTPStatus(code).phrase}
            for code in codes}


READ = errors(400, 401, 503)  # 400: a RunnerError; 503: the configuration or store
CONTROL = errors(400, 401, 403, 503)


@dataclass
class RunPages:
    """Pages of GET /api/runs as sent, by query string: kept until a run changes (the hub's
    generation moves), and at most PAGE_TTL seconds should an event be missed. Its
    middleware answers a fresh page to any valid token before FastAPI routes, validates and
    solves dependencies: a third of the CPU of a request through them. A miss goes
    through FastAPI, which validates the query before `get` keeps its page."""

    hub: Hub
    auth: Auth
    pages: dict[bytes, tuple[int, float, bytes]] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def fresh(self, query: bytes) -> bytes | None:
        hit = self.pages.get(query)
        if hit and hit[0] == self.hub.generation and time.monotonic() - hit[1] <= PAGE_TTL:
            return hit[2]
        return None

    async def get(self, query: bytes, make: Callable[[], bytes]) -> bytes:
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


def create_api(system: System, auth: Auth, workers_every: float = 2.0) -> FastAPI:
    control = _Control(system)
    store = system.store
    metrics = overview.RunMetrics()
    hub = Hub(store, system.settings.redis_url, on_run=metrics.observe)

    @contextlib.contextmanager
    def inspector() -> Iterator[Any]:  # a connection of its own: not shared with requests
        app = control.app()[0]
        with app.connection_for_write() as conn:
            yield app.control.inspect(timeout=1.0, connection=conn)

    workers = overview.Workers(inspector, store, workers_every,
                               on_change=lambda view: hub.broadcast_threadsafe(
                                   {"kind": "workers", "workers": view}),
                               watched=lambda: bool(hub.clients))
    cache: dict[Any, tuple[float, Any]] = {}
    cache_lock = threading.Lock()
    pages = RunPages(hub, auth)

    def cached(key: Any, ttl: float, make: Callable[[], Any]) -> Any:
        now = time.monotonic()
        hit = cache.get(key)
        if hit and now - hit[0] < ttl:
            return hit[1]
        with cache_lock:  # one computes, the others wait for it
            hit = cache.get(key)
            if hit and time.monotonic() - hit[0] < ttl:
                return hit[1]
            value = make()
            cache[key] = (time.monotonic(), value)
            return value

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(hub.run())
        workers.start()
        gc.freeze()  # what startup built lives on: a full collection no longer walks it
        try:
            yield
        finally:
            workers.stop()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # /docs: Swagger UI from the files fastapi-offline ships, under /docs/static, so the page
    # loads nothing from other hosts (no CDN, no online validator badge); the page is ours
    # (dashboard/docs.html), started by a script file: no inline script for the CSP to allow.
    # No /redoc: ReDoc always fetches its footer logo from its CDN.
    api = FastAPIOffline(docs_url=None, redoc_url=None, title="runner", version="1",
                         lifespan=lifespan,
                         description="Monitoring and control of runner: runs, workers, queues, "
                                     "schedules; live events on WS /api/events.",
                         default_response_class=JSONResponse, static_url="/docs/static")
    api.add_middleware(pages.middleware)
    bearer = HTTPBearer(auto_error=False, description="a token of RUNNER_API_TOKENS or a JWT")

    def need(role: str) -> Callable[..., Awaitable[Principal]]:
        async def check(creds: Annotated[HTTPAuthorizationCredentials | None,
                                         Depends(bearer)]) -> Principal:  # on the loop: cheap
            who = auth.check(creds.credentials) if creds else None
            if who is None:
                raise HTTPException(401, auth.refusal(creds.credentials) if creds else
                                    "a valid bearer token is required",
                                    headers={"WWW-Authenticate": "Bearer"})
            if role == "operator" and who.role != "operator":
                raise HTTPException(403, f"{who.name} is a {who.role}; this needs an operator")
            return who
        return check

    Viewer = Annotated[Principal, Depends(need("viewer"))]
    Operator = Annotated[Principal, Depends(need("operator"))]

    @api.exception_handler(RunnerError)
    async def runner_error(_r: Request, e: RunnerError) -> JSONResponse:
        code = 503 if isinstance(e, ConfigInvalid | StoreUnavailable) else 400
        detail = ("the configuration is invalid and none is applied: "
                  + "; ".join(p.text() for p in e.problems[:5])
                  if isinstance(e, ConfigInvalid) else str(e))
        return JSONResponse({"detail": detail}, code)

    @api.exception_handler(KombuError)
    async def broker_error(_r: Request, e: KombuError) -> JSONResponse:
        return JSONResponse({"detail": f"the broker cannot be reached: {e}"}, 503)

    @api.exception_handler(RedisError)
    async def redis_error(_r: Request, e: RedisError) -> JSONResponse:
        return JSONResponse({"detail": f"the store cannot be reached: {e}"}, 503)

    def status_view() -> dict[str, Any]:
        from runner import publish

        view: dict[str, Any] = overview.shown({
            **overview.revisions(store),
            "broker": "redis" if system.settings.redis_url else "embedded",
            "suspended": store.get("suspended") or {},
            "beat": store.get("beat"), "beat_alive": store.holder("beat") is not None,
            "reports": overview.reports(store.get(publish.STATUS))})
        return view

    def queues_view() -> dict[str, Any]:
        return overview.queues(control.config(), lambda q: queue_length(system, q),
                               workers.view())

    def workers_view() -> dict[str, Any]:
        config = control.config()
        return {"workers": workers.view(),
                "configured": {n: {"queues": list(w.queues), "concurrency": w.concurrency}
                               for n, w in sorted(config.workers.items())}}

    def stats_view(minutes: int) -> dict[str, Any]:
        now = time.time()
        runs, more = store.runs_page(since=now - minutes * 60, limit=10_000, scan=10_000)
        return {**overview.stats(runs, now, minutes), "truncated": more is not None,
                "lateness": lateness.summary(store.tallies(lateness.KEY))}

    # ---- reading ------------------------------------------------------------------------

    generation = Generation("api", log)

    def health_view() -> tuple[int, bytes]:
        try:
            store.ping()
            rec = store.get("reconcile") or {}
            beat = store.holder("beat") is not None
            generation.check(store)
            warning = wiped(store.get(GENERATION))
        except (RedisError, OSError, RunnerError) as e:
            return 503, json.dumps({"ok": False, "store": False, "error": str(e)}).encode()
        # a wiped store is reported, not 503: the system works again, and a restart of
        # the API (what a failing probe leads to) would not bring the data back
        return 200, json.dumps({"ok": True, "store": True, "warning": warning,
                                "broker": "redis" if
                                system.settings.redis_url else "embedded",
                                "last_reconcile": rec.get("last_reconcile"),
                                "applied_revision": rec.get("applied_revision"),
                                "beat_alive": beat}).encode()

    @api.get("/api/health", tags=["read"], response_model=m.Health,
             responses={503: {"model": m.Health, "description": "the store cannot be reached"}})
    async def health() -> Response:
        """No token needed: is the store reachable, when was the last reconcile, is beat up
        (looked at most once a second: a flood of probes does not reach the store)."""
        hit = cache.get("health")
        if hit is None or time.monotonic() - hit[0] >= HEALTH_TTL:
            hit = cache["health"] = (time.monotonic(), await run_in_threadpool(health_view))
        code, body = hit[1]
        return Response(body, code, media_type="application/json")

    @api.get("/api/whoami", tags=["read"], response_model=m.Who, responses=READ)
    def whoami(who: Viewer) -> JSONResponse:
        """The name and role of the token (what the dashboard shows and offers)."""
        return JSONResponse({"name": who.name, "role": who.role})

    @api.get("/api/status", tags=["read"], response_model=m.Status, responses=READ)
    def status(_who: Viewer) -> JSONResponse:
        """The applied and attempted revision, the attempted one's errors, beat, reports."""
        return JSONResponse(status_view())

    @api.get("/api/stats", tags=["read"], response_model=m.Stats, responses=READ)
    def stats(_who: Viewer, minutes: Annotated[int, Query(ge=1, le=1440)] = 60
              ) -> JSONResponse:
        """Runs created in the last `minutes`: per state, per queue, per minute, rate,
        durations per job (the newest 10,000 at most; `truncated` says when cut)."""
        return JSONResponse(cached(("stats", minutes), 1.0, lambda: stats_view(minutes)))

    @api.get("/api/workers", tags=["read"], response_model=m.Workers, responses=READ)
    def list_workers(_who: Viewer) -> JSONResponse:
        """Live workers (remote control, refreshed every few seconds): queues, concurrency,
        active runs, processed, load, memory, last heartbeat; and the configured ones."""
        return JSONResponse(workers_view())

    @api.get("/api/queues", tags=["read"], response_model=dict[str, m.Queue],
             responses=READ)
    def list_queues(_who: Viewer) -> JSONResponse:
        """Each queue's length, priority, configured workers and live consumers."""
        return JSONResponse(cached("queues", 0.5, queues_view))

    @api.get("/api/jobs", tags=["read"], response_model=m.Jobs, responses=READ)
    def list_jobs(_who: Viewer) -> JSONResponse:
        """The jobs of the configuration the system runs."""
        config = control.config()
        return JSONResponse({"revision": config.revision, "jobs": overview.jobs(config)})

    @api.get("/api/schedules", tags=["read"], response_model=dict[str, m.Schedule],
             responses=READ)
    def list_schedules(_who: Viewer) -> JSONResponse:
        """Each schedule with its next fire time, last firing and last run."""
        return JSONResponse(overview.schedules(store, control.config()))

    @api.get("/api/runs", tags=["read"], response_model=m.RunPage,
             responses={**READ, **errors(400)})
    async def list_runs(
        _who: Viewer,
        request: Request,
        job: Annotated[str | None, Query(pattern=NAME)] = None,
        state: m.State | None = None,
        since: Annotated[float | None, Query(ge=0, le=1e11, description="Unix time")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Query(max_length=200,
                                            description="`next` of the previous page")] = None,
    ) -> Response:
        """Run summaries, newest first, a page at a time: pass `next` back as `cursor`."""
        def page() -> bytes:
            runs, more = store.runs_page(job, _cursor(cursor), limit, state, since)
            return json.dumps({"runs": runs, "next": f"{more[0]!r}:{more[1]}" if more else None}
                              ).encode()

        return Response(await pages.get(request.scope["query_string"], page),
                        media_type="application/json")

    @api.get("/api/runs/{run_id}", tags=["read"], response_model=m.Run,
             responses={**READ, **errors(404)})
    def get_run(_who: Viewer, run_id: Annotated[str, PathParam(max_length=100)]
                ) -> JSONResponse:
        """The whole record: lifecycle times, revision, trigger, worker, queue, deliveries,
        actions, and under `result` each target's status, rc, masked output and error."""
        record = store.run(run_id)
        if record is None:
            raise HTTPException(404, f"there is no run {run_id!r}")
        return JSONResponse(record)

    # ---- control ------------------------------------------------------------------------

    def action(who: Principal, what: str, **more: Any) -> dict[str, Any]:
        return {"action": what, "by": who.name, "role": who.role, "at": time.time(),
                "via": "api", **more}

    @api.post("/api/runs/{run_id}/cancel", tags=["control"], response_model=m.Cancelled,
              responses={**CONTROL, **errors(404, 409)})
    def cancel_run(who: Operator, run_id: Annotated[str, PathParam(max_length=100)]
                   ) -> JSONResponse:
        """A queued run never starts; a running one stops its targets and ends REVOKED."""
        from runner import tasks

        record = store.run(run_id)
        if record is None:
            raise HTTPException(404, f"there is no run {run_id!r}")
        if record.get("state") not in ACTIVE:
            raise HTTPException(409, f"run {run_id} is already {record.get('state')}; "
                                     "nothing to cancel")
        # recorded before the cancel, so it is in the record when the run becomes final
        store.update_run(run_id, {"actions": [*(record.get("actions") or []),
                                              action(who, "cancel")]})
        app, _config = control.app()
        try:
            was = tasks.cancel(app, store, run_id, f"{who.name} via the API")
        except UsageError as e:  # it ended meanwhile
            raise HTTPException(409, str(e)) from None
        log.info("api: %s (%s) cancelled run %s", who.name, who.role, run_id)
        now = store.run(run_id) or {}
        return JSONResponse({"run_id": run_id, "previous": was.get("state"),
                             "state": now.get("state"), "cancel_requested": True})

    @api.post("/api/runs/{run_id}/retry", tags=["control"], status_code=201,
              response_model=m.Retried, responses={**CONTROL, **errors(404)})
    def retry_run(who: Operator, run_id: Annotated[str, PathParam(max_length=100)]
                  ) -> JSONResponse:
        """Queues a new run of the same job and limit, with trigger `retry-of RUN_ID`."""
        from runner import tasks

        if store.run(run_id) is None:
            raise HTTPException(404, f"there is no run {run_id!r}")
        app, config = control.app()
        new = tasks.retry(app, store, config, run_id,
                          extra={"actions": [action(who, "retry", of=run_id)]})
        log.info("api: %s (%s) retried run %s as %s", who.name, who.role, run_id, new)
        return JSONResponse({"run_id": new, "retry_of": run_id, "state": "PENDING"}, 201)

    @api.post("/api/jobs/{name}/run", tags=["control"], status_code=201,
              response_model=m.Started, responses={**CONTROL, **errors(404)})
    def run_job(who: Operator, name: Annotated[str, PathParam(pattern=NAME)],
                limit: Annotated[str | None, Query(max_length=1000,
                                                   description="target selectors")] = None
                ) -> JSONResponse:
        """Queues a run of job `name` (only the targets matching `limit`, if given)."""
        from runner import tasks

        app, config = control.app()
        if name not in config.jobs:
            raise HTTPException(404, f"there is no job {name!r} in revision "
                                     f"{config.revision[:12]}")
        run_id = tasks.enqueue(app, store, config, name, "api", limit,
                               extra={"actions": [action(who, "run", limit=limit)]})
        log.info("api: %s (%s) started job %s as run %s", who.name, who.role, name, run_id)
        return JSONResponse({"run_id": run_id, "job": name, "state": "PENDING"}, 201)

    # ---- live ---------------------------------------------------------------------------

    def snapshot() -> dict[str, Any]:
        runs, _more = store.runs_page(limit=100)
        try:
            config = control.config()
            configured: dict[str, Any] = {
                "queues": queues_view(), "schedules": overview.schedules(store, config),
                "jobs": overview.jobs(config)}
        except RunnerError as e:
            configured = {"config_error": str(e)}
        return {"kind": "snapshot", "at": time.time(), "runs": runs,
                "workers": workers.view(), "status": status_view(), **configured}

    @api.websocket("/api/events")
    async def events(ws: WebSocket) -> None:
        """A snapshot, then every run, worker, schedule and reconcile change as it happens.
        Authenticate with an Authorization header, or as the first message
        `{"token": "..."}` (browsers cannot set headers on a WebSocket)."""
        await ws.accept()
        header = ws.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else None
        if token is None:
            try:
                first = json.loads(await asyncio.wait_for(ws.receive_text(), 10))
                token = str(first.get("token", "")) if isinstance(first, dict) else ""
            except (TimeoutError, ValueError, WebSocketDisconnect, KeyError):
                token = ""
        who = auth.check(token) if token else None
        if who is None:
            await ws.close(code=4401, reason="a valid bearer token is required")
            return
        queue = hub.subscribe()  # before the snapshot: nothing falls between them
        try:
            await ws.send_text(json.dumps(await asyncio.to_thread(snapshot)))

            async def send() -> None:
                while (text := await queue.get()) is not None:
                    await ws.send_text(text)

            async def receive() -> None:
                with contextlib.suppress(WebSocketDisconnect):
                    while True:
                        await ws.receive_text()

            # a JWT's connection ends with it (a timer, not a wait for some state)
            lives = asyncio.create_task(asyncio.sleep(who.expires - time.time()
                                                      if who.expires else math.inf))
            done, pending = await asyncio.wait(
                [asyncio.create_task(send()), asyncio.create_task(receive()), lives],
                return_when=asyncio.FIRST_COMPLETED)
            for t in pending:
                t.cancel()
            for t in done:
                with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                    t.result()
            if lives in done:
                await ws.close(code=4401, reason="the token expired")
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            hub.unsubscribe(queue)
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await ws.close()  # the client may be gone already

    # ---- Prometheus and the dashboard ---------------------------------------------------

    def metrics_view() -> str:
        runs, _more = store.runs_page(limit=10_000, scan=10_000)
        active: dict[str, int] = {}
        for r in runs:
            if r.get("state") in ACTIVE:
                active[r["state"]] = active.get(r["state"], 0) + 1
        try:
            lengths = {q: queue_length(system, q) for q in control.config().queues}
        except RunnerError:
            lengths = {}
        return overview.metrics_text(metrics, active, lengths, len(workers.view()),
                                     overview.revisions(store), time.time(),
                                     store.tallies(lateness.KEY))

    @api.get("/metrics", tags=["read"], response_class=PlainTextResponse)
    def prometheus() -> PlainTextResponse:
        """Prometheus text format; no token needed (like /api/health)."""
        return PlainTextResponse(cached("metrics", 1.0, metrics_view),
                                 media_type="text/plain; version=0.0.4")

    @api.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(DASHBOARD / "index.html")

    @api.get("/docs", include_in_schema=False)
    def docs() -> FileResponse:
        return FileResponse(DASHBOARD / "docs.html")

    @api.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(DASHBOARD / "favicon.svg", media_type="image/svg+xml")

    api.mount("/static", StaticFiles(directory=DASHBOARD), name="static")
    api.state.hub, api.state.workers, api.state.metrics = hub, workers, metrics
    return api


def parse_bind(bind: str, option: str = "--bind") -> tuple[str, int]:
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"{option} {bind!r} is not HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]") or "127.0.0.1", int(port)


def check_listen(host: str, port: int, option: str = "--bind") -> None:
    """A UsageError unless HOST:PORT can be listened on now (bound as uvicorn binds it)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as e:
        said = (e.strerror or str(e)).lower()
        raise UsageError(f"cannot listen on {host}:{port}: {said}; pass {option} HOST:PORT "
                         "(a free port, or an address of this machine)") from None


def serve(system: System, bind: str) -> None:
    import click
    import uvicorn

    from runner.api_guard import LOCAL_HOSTS, guard

    host, port = parse_bind(bind)
    auth, generated = load_auth(system.settings, system.state_dir)
    check_listen(host, port)
    api = guard(create_api(system, auth),
                (*LOCAL_HOSTS, host, *system.settings.api_allowed_hosts))
    where = f"http://{host if ':' not in host else f'[{host}]'}:{port}/"
    click.echo(f"api: dashboard and API on {where} (OpenAPI at {where}docs)", err=True)
    if generated:
        click.echo(f"api: no RUNNER_API_TOKENS: an operator token is in {generated}", err=True)
    uvicorn.run(api, host=host, port=port, log_level="warning", access_log=False)
