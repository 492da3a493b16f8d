"""The viewer's routes of the dashboard's job and schedule pages (ops/detail.py builds them)
and their response models (kept here, so models.py stays under the module size)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from runner.api.context import Ctx, Viewer
from runner.api.models import NAME, READ, State, errors
from runner.config.model import ConfigSet
from runner.ops import detail

router = APIRouter(tags=["read"])
DEFINITION_TTL = 5.0  # seconds a job page is reused (it reads git and up to 1,000 runs)


class Param(BaseModel):
    type: str
    enum: list[Any] | None = None
    default: Any = None
    description: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = None
    max_length: int | None = None


class Upcoming(BaseModel):
    name: str
    next: list[str] = Field(description="ISO 8601 with the schedule zone's offset")


class JobStats(BaseModel):
    runs: int = Field(description="of the job's newest 1,000 runs in the store")
    succeeded: int
    failed: int
    durations: list[list[float]] = Field(description="[finished, seconds] of the newest 100 "
                                                     "ended runs, oldest first")


class JobPage(BaseModel):
    name: str
    queue: str
    description: str
    file: str | None = Field(description="where it is written (null: the file is not found)")
    line: int | None
    yaml: str | None = Field(description="its lines as written in `file`, at `revision`")
    revision: str
    commit_url: str | None = Field(description="RUNNER_COMMIT_URL with the revision")
    timeout: int = Field(description="seconds a run may take; then its targets are stopped")
    deadline: int | None = Field(description="seconds from a run's start: then it is late")
    targets: list[str] = Field(description="the targets it resolves to now")
    schedules: list[Upcoming]
    params: dict[str, Param]
    stats: JobStats


class Firing(BaseModel):
    at: str | None = Field(description="the instant it was due (ISO 8601)")
    run_id: str
    state: State | None
    late: float | None = Field(description="seconds from `at` to when it was recorded")
    error: str | None = Field(None, description="why it was missed or skipped")
    overdue: str | None = Field(None, description="when its run passed its deadline (`late`)")


class SchedulePage(BaseModel):
    name: str
    job: str
    workflow: bool = Field(description="`job` names a workflow")
    when: str = Field(description="as `runner plan` writes it")
    timezone: str
    deadline: int | None = Field(description="seconds from a firing: then its run is late")
    next: list[str] = Field(description="ISO 8601 with the schedule zone's offset")
    firings: list[Firing] = Field(description="past firings, newest first (100 at most)")
    suspended: bool


@router.get("/api/jobs/{name}", response_model=JobPage, responses={**READ, **errors(404)})
def get_job(_who: Viewer, ctx: Ctx, name: Annotated[str, PathParam(pattern=NAME)]
            ) -> JSONResponse:
    """One job: its definition as written at the applied revision (file, line, text, the
    commit's link), the targets it resolves to now, its schedules' next 5 firings, its
    params and statistics of its runs."""
    config = ctx.control.config()
    found = config.jobs.get(name)
    if found is None:
        raise HTTPException(404, _missing(config, "job", name))
    url = ctx.system.settings.commit_url
    return JSONResponse(ctx.cache.get(("job", config.revision, name), DEFINITION_TTL, lambda: (
        detail.job(ctx.system, config, found, datetime.now(UTC),
                   lambda sha: url.replace("{sha}", sha) if url else None))))


@router.get("/api/schedules/{name}", response_model=SchedulePage,
            responses={**READ, **errors(404)})
def get_schedule(_who: Viewer, ctx: Ctx, name: Annotated[str, PathParam(pattern=NAME)]
                 ) -> JSONResponse:
    """One schedule: how it fires (as `runner plan` says), its next 10 firings in its zone,
    its past firings from the run records (ran, missed, skipped; how late), suspended."""
    config = ctx.control.config()
    if name not in config.schedules:
        raise HTTPException(404, _missing(config, "schedule", name))
    return JSONResponse(detail.schedule(ctx.system, config, name, datetime.now(UTC)))


def _missing(config: ConfigSet, kind: str, name: str) -> str:
    if kind == "job" and name in config.workflows:
        return f"{name!r} is a workflow, not a job: GET /api/workflows/{name}"
    return (f"there is no {kind} {name!r} at revision {config.revision[:12]}; "
            f"GET /api/{kind}s lists them")
