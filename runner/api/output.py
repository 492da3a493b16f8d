"""The viewer's routes of a run's files and output: a file it downloaded (its bytes, by sha256)
and its output so far while it runs (what the worker writes each second, celery/output.py),
then the final record's; with their response models."""

from __future__ import annotations

import base64
import os
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from runner.api import views
from runner.api.context import Context, Ctx, Viewer
from runner.api.models import READ, errors
from runner.celery import output
from runner.runs import ACTIVE
from runner.store import keys

router = APIRouter(tags=["read"])
RUN_ID = PathParam(max_length=100)


class TargetOutput(BaseModel):
    stdout: str
    stderr: str
    step: str | None = Field(description="the step running now (null once the run ended)")


class Output(BaseModel):
    running: bool = Field(description="the run is not final yet (its output may grow)")
    targets: dict[str, TargetOutput] = Field(description="masked, the tail (RUNNER_OUTPUT_CAP)")


def _record(ctx: Context, run_id: str) -> dict[str, Any]:
    """Run `run_id`'s record from the store or the report branch; 404 when neither has it."""
    record = ctx.store.run(run_id)
    found = record.to_json() if record is not None else views.reported(ctx, run_id)
    if found is None:
        raise HTTPException(404, f"there is no run {run_id!r}")
    return found


@router.get("/api/runs/{run_id}/output", response_model=Output,
            responses={**READ, **errors(404)})
def run_output(_who: Viewer, ctx: Ctx, run_id: Annotated[str, RUN_ID]) -> JSONResponse:
    """Each target's stdout and stderr so far and its step while the run is active (written
    by its worker at most once a second; `{}` until a target began), then the final
    record's output."""
    live = output.read(ctx.store, run_id)  # before the record: a run ending meanwhile
    record = _record(ctx, run_id)          # is shown by its final record
    if record.get("state") in ACTIVE:
        return JSONResponse({"running": True, "targets": live})
    targets = ((record.get("result") or {}).get("targets") or {})
    return JSONResponse({"running": False, "targets": {
        name: {"stdout": t.get("stdout") or "", "stderr": t.get("stderr") or "", "step": None}
        for name, t in targets.items()}})


@router.get("/api/runs/{run_id}/downloads/{sha256}", response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}},
                             "description": "the file's bytes (masked, cut at max_bytes)"},
                       **READ, **errors(404)})
def download(_who: Viewer, ctx: Ctx, run_id: Annotated[str, RUN_ID],
             sha256: Annotated[str, PathParam(pattern=r"^[0-9a-f]{64}$")]) -> Response:
    """A file a download step of the run fetched, as an attachment named after its `src`
    (the sha256 is in the record's `result.targets.NAME.downloads`)."""
    record = _record(ctx, run_id)
    src = next((str(d.get("src")) for t in ((record.get("result") or {}).get("targets")
                                            or {}).values()
                for d in t.get("downloads") or () if d.get("sha256") == sha256), None)
    if src is None:
        raise HTTPException(404, f"run {run_id} downloaded no file of sha256 {sha256}; "
                                 f"GET /api/runs/{run_id} lists its downloads")
    entry = ctx.store.get(keys.download(run_id, sha256)) or ctx.store.get(keys.blob(sha256))
    if entry is None:
        raise HTTPException(404, f"the store no longer keeps {src} of run {run_id}; the "
                                 "report branch has it under TARGET/downloads/")
    name = os.path.basename(src.rstrip("/")) or "download"
    plain = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_"
                    for c in name)
    return Response(base64.b64decode(entry["data"]), media_type="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{plain}"; '
                                                    f"filename*=UTF-8''{quote(name)}"})
