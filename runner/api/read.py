"""The viewer's routes of `runner api`: health, who am I, status, statistics, workers,
queues, jobs, workflows, schedules and runs (a page at a time, or one whole record)."""

import json
import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from runner.api import models as m
from runner.api import views
from runner.api import workflows as flows
from runner.api.context import Context, Ctx, Viewer
from runner.api.models import NAME, READ, errors
from runner.ops import limits, overview
from runner.store import Cursor, RunFilter

HEALTH_TTL = 1.0  # seconds an answer of GET /api/health is reused

router = APIRouter(tags=["read"])


def parse_cursor(raw: str | None) -> tuple[bool, Cursor | None]:
    """Whether a `next` this API gave is on the report branch (`reports:...`), and its
    position (CREATED:RUN_ID; None: from the newest); 400 for any other."""
    if not raw:
        return False, None
    branch = raw.startswith("reports:")
    if branch and raw == "reports:":
        return True, None
    created, sep, run_id = raw.removeprefix("reports:").partition(":")
    try:
        value = float(created)
    except ValueError:
        value = -1.0
    if not sep or not run_id or not 0 <= value <= 1e11:  # a Unix time, as since/until
        raise HTTPException(400, f"cursor {raw[:80]!r} is not one this API gave (CREATED:RUN_ID)")
    return branch, (value, run_id)


@router.get("/api/health", response_model=m.Health,
            responses={503: {"model": m.Health, "description": "the store cannot be reached"}})
async def health(request: Request) -> Response:
    """No token needed: is the store reachable, when was the last reconcile, is beat up
    (looked at most once a second: a flood of probes does not reach the store)."""
    ctx: Context = request.app.state.context  # no dependency to solve: probes come by the
    cache = ctx.cache.entries                 # thousand
    hit = cache.get("health")
    if hit is None or time.monotonic() - hit[0] >= HEALTH_TTL:
        hit = cache["health"] = (time.monotonic(), await run_in_threadpool(views.health, ctx))
    code, body = hit[1]
    return Response(body, code, media_type="application/json")


@router.get("/api/whoami", response_model=m.Who, responses=READ)
def whoami(who: Viewer) -> JSONResponse:
    """The name and role of the token (what the dashboard shows and offers)."""
    return JSONResponse({"name": who.name, "role": who.role})


@router.get("/api/status", response_model=m.Status, responses=READ)
def status(_who: Viewer, ctx: Ctx) -> JSONResponse:
    """The applied and attempted revision, the attempted one's errors, beat, reports."""
    return JSONResponse(views.status(ctx))


@router.get("/api/stats", response_model=m.Stats, responses=READ)
def stats(_who: Viewer, ctx: Ctx, minutes: Annotated[int, Query(ge=1, le=1440)] = 60
          ) -> JSONResponse:
    """Runs created in the last `minutes`: per state, per queue, per minute, rate,
    durations per job (the newest 10,000 at most; `truncated` says when cut)."""
    return JSONResponse(ctx.cache.get(("stats", minutes), 1.0,
                                      lambda: views.stats(ctx, minutes)))


@router.get("/api/workers", response_model=m.Workers, responses=READ)
def list_workers(_who: Viewer, ctx: Ctx) -> JSONResponse:
    """Live workers (remote control, refreshed every few seconds): queues, concurrency,
    active runs, processed, load, memory, last heartbeat; and the configured ones."""
    return JSONResponse(views.workers(ctx))


@router.get("/api/queues", response_model=dict[str, m.Queue], responses=READ)
def list_queues(_who: Viewer, ctx: Ctx) -> JSONResponse:
    """Each queue's length, priority, configured workers and live consumers."""
    return JSONResponse(ctx.cache.get("queues", 0.5, lambda: views.queues(ctx)))


@router.get("/api/limits", response_model=dict[str, m.Limit], responses=READ)
def list_limits(_who: Viewer, ctx: Ctx) -> JSONResponse:
    """Each cluster-wide limit ("limit NAME", "target NAME", "job NAME"): its max, who
    holds its slots and who waits for one."""
    return JSONResponse(ctx.cache.get("limits", 0.5, lambda: limits.view(
        ctx.store, ctx.control.config())))


@router.get("/api/jobs", response_model=m.Jobs, responses=READ)
def list_jobs(_who: Viewer, ctx: Ctx) -> JSONResponse:
    """The jobs of the configuration the system runs."""
    config = ctx.control.config()
    return JSONResponse({"revision": config.revision, "jobs": overview.jobs(config)})


@router.get("/api/workflows", response_model=m.Workflows, responses=READ)
def list_workflows(_who: Viewer, ctx: Ctx) -> JSONResponse:
    """The workflows of the configuration the system runs: description, node count and
    the schedules that run each."""
    config = ctx.control.config()
    return JSONResponse({"revision": config.revision, "workflows": flows.workflows(config)})


@router.get("/api/workflows/{name}", response_model=m.WorkflowGraph,
            responses={**READ, **errors(404)})
def get_workflow(_who: Viewer, ctx: Ctx, name: Annotated[str, PathParam(pattern=NAME)]
                 ) -> JSONResponse:
    """One workflow's graph: its nodes in topological order (kind, job or approval
    question, limit, timeout, after, when, depth) and its edges."""
    config = ctx.control.config()
    workflow = config.workflows.get(name)
    if workflow is None:
        raise HTTPException(404, f"there is no workflow {name!r} at revision "
                                 f"{config.revision[:12]}; GET /api/workflows lists them")
    return JSONResponse(flows.graph(config, workflow))


@router.get("/api/schedules", response_model=dict[str, m.Schedule], responses=READ)
def list_schedules(_who: Viewer, ctx: Ctx) -> JSONResponse:
    """Each schedule with its next fire time, last firing and last run."""
    return JSONResponse(overview.schedules(ctx.store, ctx.control.config()))


@router.get("/api/runs", response_model=m.RunPage, responses={**READ, **errors(400)})
async def list_runs(
    _who: Viewer,
    ctx: Ctx,
    request: Request,
    job: Annotated[str | None, Query(pattern=NAME)] = None,
    state: m.State | None = None,
    queue: Annotated[str | None, Query(max_length=200)] = None,
    trigger: Annotated[str | None, Query(max_length=200, description=(
        "the trigger, or its first words: `schedule` keeps `schedule NAME`"))] = None,
    worker: Annotated[str | None, Query(max_length=300)] = None,
    since: Annotated[float | None, Query(ge=0, le=1e11, description="Unix time")] = None,
    until: Annotated[float | None, Query(ge=0, le=1e11, description="Unix time")] = None,
    q: Annotated[str | None, Query(max_length=100, description="a run id's start")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200,
                                        description="`next` of the previous page")] = None,
) -> Response:
    """Run summaries, newest first, a page at a time: pass `next` back as `cursor`. With
    filters a page may be short (5,000 runs are looked at per page) and still have a
    `next`. Past the store's oldest run, `next` goes on into the report branch
    (`reports:...`: older runs the store let go)."""
    where = RunFilter(state, queue, trigger, worker, q or None)

    def page() -> bytes:
        branch, at = parse_cursor(cursor)
        runs, more = views.runs(ctx, job, where, since, until, limit, branch, at)
        return json.dumps({"runs": runs, "next": more}).encode()

    return Response(await ctx.pages.get(request.scope["query_string"], page),
                    media_type="application/json")


@router.get("/api/runs/{run_id}", response_model=m.Run, responses={**READ, **errors(404)})
def get_run(_who: Viewer, ctx: Ctx, run_id: Annotated[str, PathParam(max_length=100)]
            ) -> JSONResponse:
    """The whole record: lifecycle times, revision, trigger, worker, queue, deliveries,
    actions, and under `result` each target's status, rc, masked output and error; from
    the report branch once the store let it go."""
    record = ctx.store.run(run_id)
    if record is None:
        found = views.reported(ctx, run_id)
        if found is None:
            raise HTTPException(404, f"there is no run {run_id!r}")
        return JSONResponse(found)
    return JSONResponse(record.to_json())

