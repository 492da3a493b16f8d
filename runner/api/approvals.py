"""Approval nodes of workflow runs from the API (issue 20): the approvals waiting (as `runner
status` lists them), and an operator's approve or reject, through the same function as
`runner approve`; the decision joins the run's `actions` like cancel and retry."""

import dataclasses
import logging
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from runner.api.context import Ctx, Operator, Viewer
from runner.api.control import action
from runner.api.models import CONTROL, READ, State, errors

log = logging.getLogger("runner.api")
router = APIRouter(tags=["approvals"])
RunId = Annotated[str, PathParam(max_length=100)]
Node = Annotated[str, PathParam(max_length=100)]


class Decision(BaseModel):
    comment: str | None = Field(None, max_length=2000, description="why: kept with the decision")


class Decided(BaseModel):
    run_id: str
    node: str
    decision: Literal["approved", "rejected"]
    state: State | None = Field(description="the workflow run's, once it went on")


class Approval(BaseModel):
    run_id: str
    workflow: str
    node: str
    question: str
    since: float | None = Field(description="when it opened")
    timeout_at: float | None = Field(description="when it is rejected unanswered")


class Approvals(BaseModel):
    approvals: list[Approval] = Field(description="oldest workflow run first")


@router.get("/api/approvals", response_model=Approvals, responses=READ)
def approvals(_who: Viewer, ctx: Ctx) -> JSONResponse:
    """The approval nodes waiting for an operator, oldest workflow run first."""
    from runner.ops import workflows

    found = workflows.waiting(ctx.store, ctx.control.config())
    return JSONResponse({"approvals": [dataclasses.asdict(a) for a in found]})


def _decide(who: Operator, ctx: Ctx, run_id: str, node: str, yes: bool,
            body: Decision | None) -> JSONResponse:
    from runner.ops import workflows

    comment = body.comment if body else None
    verb = "approve" if yes else "reject"
    try:
        record = workflows.approve(ctx.store, ctx.control.app, run_id, node, yes, who.name,
                                   comment, action(who, verb, node=node, comment=comment))
    except workflows.NoSuchNode as e:
        raise HTTPException(404, str(e)) from None
    except (workflows.NotWaiting, workflows.Busy) as e:
        raise HTTPException(409, str(e)) from None
    decided = "approved" if yes else "rejected"
    log.info("api: %s (%s) %s node %s of run %s", who.name, who.role, decided, node, run_id)
    return JSONResponse({"run_id": run_id, "node": node, "decision": decided,
                         "state": record.state})


@router.post("/api/runs/{run_id}/nodes/{node}/approve", response_model=Decided,
             responses={**CONTROL, **errors(404, 409)})
def approve(who: Operator, ctx: Ctx, run_id: RunId, node: Node,
            body: Decision | None = None) -> JSONResponse:
    """Approves the approval node `node` of workflow run `run_id` (409 unless it waits for
    one); the workflow goes on at once."""
    return _decide(who, ctx, run_id, node, True, body)


@router.post("/api/runs/{run_id}/nodes/{node}/reject", response_model=Decided,
             responses={**CONTROL, **errors(404, 409)})
def reject(who: Operator, ctx: Ctx, run_id: RunId, node: Node,
           body: Decision | None = None) -> JSONResponse:
    """Rejects the approval node `node` of workflow run `run_id` (409 unless it waits for
    one): the node fails, and the workflow goes on at once."""
    return _decide(who, ctx, run_id, node, False, body)
