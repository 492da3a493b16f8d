"""What the API's answers hold, assembled from the store, the live workers and the
configuration (overview.py shapes each part); shared by the read routes and the WebSocket
snapshot (live.py)."""

import json
import time
from typing import Any

from redis.exceptions import RedisError

from runner.api.context import Context
from runner.celery.app import queue_length
from runner.errors import RunnerError
from runner.ops import lateness, overview
from runner.store import keys
from runner.store.entries import ReconcileStatus, read_reconcile
from runner.store.generation import wiped


def status(ctx: Context) -> dict[str, Any]:
    """The applied and attempted revisions, beat, suspensions and the report publisher."""
    from runner.ops.status import status as current

    now = current(ctx.system)
    view: dict[str, Any] = overview.shown({
        **now.revisions, "broker": now.broker, "suspended": now.suspended,
        "beat": now.beat, "beat_alive": now.beat_alive, "reports": now.reports})
    return view


def queues(ctx: Context) -> dict[str, Any]:
    """Each queue's length, priority, configured workers and live consumers."""
    app, config = ctx.control.app()
    return overview.queues(config, lambda q: queue_length(app, q), ctx.workers.view())


def workers(ctx: Context) -> dict[str, Any]:
    """The live workers and the configured ones."""
    config = ctx.control.config()
    return {"workers": ctx.workers.view(),
            "configured": {n: {"queues": list(w.queues), "concurrency": w.concurrency}
                           for n, w in sorted(config.workers.items())}}


def stats(ctx: Context, minutes: int) -> dict[str, Any]:
    """Statistics of the runs created in the last `minutes`."""
    now = time.time()
    runs, more = ctx.store.runs_page(since=now - minutes * 60, limit=10_000, scan=10_000)
    return {**overview.stats(runs, now, minutes), "truncated": more is not None,
            "lateness": lateness.summary(ctx.store.tallies(keys.LATENESS))}


def health(ctx: Context) -> tuple[int, bytes]:
    """The status code and body of GET /api/health."""
    store = ctx.store
    try:
        store.ping()
        rec = read_reconcile(store) or ReconcileStatus()
        beat = store.holder(keys.BEAT) is not None
        ctx.generation.check(store)
        warning = wiped(store.get(keys.GENERATION))
    except (RedisError, OSError, RunnerError) as e:
        return 503, json.dumps({"ok": False, "store": False, "error": str(e)}).encode()
    # a wiped store is reported, not 503: the system works again, and a restart of
    # the API (what a failing probe leads to) would not bring the data back
    return 200, json.dumps({"ok": True, "store": True, "warning": warning,
                            "broker": "redis" if
                            ctx.system.settings.redis_url else "embedded",
                            "last_reconcile": rec.last_reconcile,
                            "applied_revision": rec.applied_revision,
                            "beat_alive": beat}).encode()

