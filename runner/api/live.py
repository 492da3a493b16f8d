"""WS /api/events: a snapshot, then every change the events hub broadcasts (runs, workers,
schedules, reconciles) until the client leaves or its JWT expires."""

import asyncio
import contextlib
import json
import math
import time
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from runner.api import views
from runner.api.context import Context, context
from runner.errors import RunnerError
from runner.ops import overview

router = APIRouter()


def snapshot(ctx: Context) -> dict[str, Any]:
    """The first message: the newest runs and everything configured."""
    runs, _more = ctx.store.runs_page(limit=100)
    try:
        config = ctx.control.config()
        configured: dict[str, Any] = {
            "queues": views.queues(ctx), "schedules": overview.schedules(ctx.store, config),
            "jobs": overview.jobs(config)}
    except RunnerError as e:
        configured = {"config_error": str(e)}
    return {"kind": "snapshot", "at": time.time(), "runs": [r.to_json() for r in runs],
            "workers": ctx.workers.view(), "status": views.status(ctx), **configured}


async def _token(ws: WebSocket) -> str:
    header = ws.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else None
    if token is None:
        try:
            first = json.loads(await asyncio.wait_for(ws.receive_text(), 10))
            token = str(first.get("token", "")) if isinstance(first, dict) else ""
        except (TimeoutError, ValueError, WebSocketDisconnect, KeyError):
            token = ""
    return token


@router.websocket("/api/events")
async def events(ws: WebSocket) -> None:
    """A snapshot, then every run, worker, schedule and reconcile change as it happens.
    Authenticate with an Authorization header, or as the first message
    `{"token": "..."}` (browsers cannot set headers on a WebSocket)."""
    ctx = await context(ws)
    await ws.accept()
    token = await _token(ws)
    who = ctx.auth.check(token) if token else None
    if who is None:
        await ws.close(code=4401, reason="a valid bearer token is required")
        return
    queue = ctx.hub.subscribe()  # before the snapshot: nothing falls between them
    try:
        await ws.send_text(json.dumps(await asyncio.to_thread(snapshot, ctx)))

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
        ctx.hub.unsubscribe(queue)
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await ws.close()  # the client may be gone already
