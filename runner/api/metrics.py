"""GET /metrics: the Prometheus text format (run counters of the events hub, active runs,
queue lengths, workers, revisions, lateness, workflow runs by state, late runs by job, limits'
slots held and waited for); no token needed, like /api/health."""

import time

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from runner.api import workflows
from runner.api.context import Context, Ctx
from runner.celery.app import queue_length
from runner.errors import RunnerError
from runner.ops import limits, overview
from runner.runs import ACTIVE
from runner.store import keys

router = APIRouter()


def text(ctx: Context) -> str:
    """The Prometheus text of /metrics."""
    runs, _more = ctx.store.runs_page(limit=10_000, scan=10_000)
    active: dict[str, int] = {}
    for r in runs:
        if r.state in ACTIVE:
            active[r.state] = active.get(r.state, 0) + 1
    names: list[str] = []
    held: list[str] = []
    try:
        app, config = ctx.control.app()
        names = list(config.workflows)
        lengths = {q: queue_length(app, q) for q in config.queues}
        held = limits.metric_lines(limits.view(ctx.store, config))
    except RunnerError:
        lengths = {}
    return overview.metrics_text(ctx.metrics, active, lengths, len(ctx.workers.view()),
                                 overview.revisions(ctx.store), time.time(),
                                 ctx.store.tallies(keys.LATENESS)) + "\n".join(
        [*workflows.metric_lines(workflows.run_states(runs, names)),
         *late_lines(ctx.store.tallies(keys.LATE)), *held]) + "\n"


def late_lines(tally: dict[str, float]) -> list[str]:
    """runner_runs_late_total: a counter in the store (celery/late.py adds 1 to its job's as
    it marks a run late), so reading it costs the same with 10 runs or 10,000."""
    return ["# HELP runner_runs_late_total Runs that passed their deadline before they "
            "finished, by job.", "# TYPE runner_runs_late_total counter",
            *(f'runner_runs_late_total{{job="{job}"}} {n:g}' for job, n in sorted(tally.items()))]


@router.get("/metrics", tags=["read"], response_class=PlainTextResponse)
def prometheus(ctx: Ctx) -> PlainTextResponse:
    """Prometheus text format; no token needed (like /api/health)."""
    return PlainTextResponse(ctx.cache.get("metrics", 1.0, lambda: text(ctx)),
                             media_type="text/plain; version=0.0.4")
