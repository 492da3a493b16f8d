"""The operator's routes of `runner api`: cancel a run, retry one, run a job. Every action
is appended to the run record's `actions` (who, what, when, via), so it lands in the run's
report commit."""

import logging
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from runner.api import models as m
from runner.api.auth import Principal
from runner.api.context import Ctx, Operator
from runner.api.models import CONTROL, NAME, errors

log = logging.getLogger("runner.api")
router = APIRouter(tags=["control"])


def action(who: Principal, what: str, **more: Any) -> dict[str, Any]:
    """An entry of a run record's `actions`."""
    from runner.ops.runs import action as entry

    return entry(what, who.name, who.role, "api", **more)


@router.post("/api/runs/{run_id}/cancel", response_model=m.Cancelled,
             responses={**CONTROL, **errors(404, 409)})
def cancel_run(who: Operator, ctx: Ctx, run_id: Annotated[str, PathParam(max_length=100)]
               ) -> JSONResponse:
    """A queued run never starts; a running one stops its targets and ends REVOKED."""
    from runner.ops import runs

    try:
        done = runs.cancel(ctx.control.app, ctx.store, run_id, f"{who.name} via the API",
                           action(who, "cancel"))
    except runs.RunNotFound:
        raise HTTPException(404, f"there is no run {run_id!r}") from None
    except runs.RunNotActive as e:
        raise HTTPException(409, str(e)) from None
    log.info("api: %s (%s) cancelled run %s", who.name, who.role, run_id)
    return JSONResponse({"run_id": run_id, "previous": done.record.state,
                         "state": done.state, "cancel_requested": True})


@router.post("/api/runs/{run_id}/retry", status_code=201, response_model=m.Retried,
             responses={**CONTROL, **errors(404)})
def retry_run(who: Operator, ctx: Ctx, run_id: Annotated[str, PathParam(max_length=100)]
              ) -> JSONResponse:
    """Queues a new run of the same job and limit, with trigger `retry-of RUN_ID`."""
    from runner.ops import runs

    try:
        new = runs.retry(ctx.control.app, ctx.store, run_id, action(who, "retry", of=run_id)).run_id
    except runs.RunNotFound:
        raise HTTPException(404, f"there is no run {run_id!r}") from None
    log.info("api: %s (%s) retried run %s as %s", who.name, who.role, run_id, new)
    return JSONResponse({"run_id": new, "retry_of": run_id, "state": "PENDING"}, 201)


@router.post("/api/jobs/{name}/run", status_code=201, response_model=m.Started,
             responses={**CONTROL, **errors(404)})
def run_job(who: Operator, ctx: Ctx, name: Annotated[str, PathParam(pattern=NAME)],
            limit: Annotated[str | None, Query(max_length=1000,
                                               description="target selectors")] = None,
            body: m.RunAsked | None = None) -> JSONResponse:
    """Queues a run of job `name` (only the targets matching `limit`, if given) with the
    body's `params`; a wrong value is 422 with the reason (as FastAPI's own validation
    errors: `detail` a list, at `["body", "params"]`), and nothing is queued."""
    from runner.config.params import ParamsInvalid
    from runner.ops import runs

    app, config = ctx.control.app()
    try:
        run_id = runs.enqueue(app, ctx.store, config, name, "api", limit,
                              action(who, "run", limit=limit),
                              params=body.params if body else None).run_id
    except runs.JobNotFound as e:
        raise HTTPException(404, f"there is no job {name!r} in revision "
                                 f"{e.revision[:12]}") from None
    except ParamsInvalid as e:
        raise RequestValidationError([{"loc": ("body", "params"), "msg": str(e),
                                       "type": "value_error"}]) from None
    log.info("api: %s (%s) started job %s as run %s", who.name, who.role, name, run_id)
    return JSONResponse({"run_id": run_id, "job": name, "state": "PENDING"}, 201)
