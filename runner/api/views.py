"""What the API's answers hold, assembled from the store, the live workers and the
configuration (overview.py shapes each part); shared by the read routes and the WebSocket
snapshot (live.py)."""

import json
import time
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError

from runner.api.context import Context
from runner.celery.app import queue_length
from runner.celery.lengths import series
from runner.errors import RunnerError
from runner.ops import lateness, overview
from runner.store import SUMMARY, Cursor, RunFilter, keys
from runner.store.entries import ReconcileStatus, read_publisher, read_reconcile
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
    tally = ctx.store.tallies(keys.LATENESS)
    return {**overview.stats(runs, now, minutes), "truncated": more is not None,
            "lateness": lateness.by_schedule(tally),
            "lateness_histogram": lateness.summary(tally), "queues": series(ctx.store)}


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


def runs(ctx: Context, job: str | None, where: RunFilter, since: float | None,
         until: float | None, limit: int, branch: bool, at: Cursor | None
         ) -> tuple[list[dict[str, Any]], str | None]:
    """A page of GET /api/runs from the store, or past its oldest run (`branch`) from the
    report branch, and its `next`."""
    reports = report_branch(ctx)
    if branch:
        if reports is None:
            return [], None
        from runner.publish.read import runs_before

        found, more = runs_before(*reports, at, limit, job, lambda r: (
            where.keeps(r) and (until is None or float(r.get("created") or 0) <= until)
            and ctx.store.run(str(r.get("run_id"))) is None), since)  # the store's: shown
        return ([{k: r[k] for k in SUMMARY if k in r} for r in found],
                f"reports:{more[0]!r}:{more[1]}" if more else None)
    records, more = ctx.store.runs_page(job, at, limit, since=since, until=until, where=where)
    if more:
        return [r.to_json() for r in records], f"{more[0]!r}:{more[1]}"
    end = (float(records[-1].created or 0), records[-1].run_id) if records else at
    return ([r.to_json() for r in records],
            None if reports is None else "reports:" + (f"{end[0]!r}:{end[1]}" if end else ""))


def report_branch(ctx: Context) -> tuple[Path, str] | None:
    """The report branch's git directory and name, once the publisher wrote it, if that
    directory is on this host (the publisher may run on another)."""
    rec = read_publisher(ctx.store)
    if rec is None or not rec.git_dir or not rec.branch or not rec.head:
        return None
    return (Path(rec.git_dir), rec.branch) if Path(rec.git_dir).is_dir() else None


def reported(ctx: Context, run_id: str) -> dict[str, Any] | None:
    """Run `run_id`'s record from the report branch, or None."""
    from runner.publish.read import read_run

    reports = report_branch(ctx)
    return None if reports is None else read_run(*reports, run_id)
