"""The execution engine driven directly: a one-job model and its run on given targets."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from runner.config import model
from runner.executor.base import FileBlob, RunResult, TargetResult
from runner.executor.cancel import Cancel
from runner.executor.engine import Engine
from tests.servers import Sshd


def make_job(steps: list[dict[str, Any]], **extra: Any) -> model.Job:
    """Job `j` on queue `q` and target `t` with these steps."""
    return model.job("j", {"queue": "q", "targets": ["t"], "steps": steps, **extra})


def run(job: model.Job, targets: Mapping[str, model.Target], files: Mapping[str, FileBlob] = {},
        engine: Engine | None = None, cancel: Cancel | None = None,
        progress: Any = None) -> RunResult:
    """`job` run on `targets` by `engine` (a fresh one, closed after, when None)."""
    async def main() -> RunResult:
        e = engine or Engine()
        try:
            return await e.run(job, targets, files, run_id="r1", revision="rev", cancel=cancel,
                               progress=progress)
        finally:
            if engine is None:
                await e.close()
    return asyncio.run(main())


def one(sshd: Sshd, steps: list[dict[str, Any]], files: Mapping[str, FileBlob] = {},
        target: dict[str, Any] | None = None, **extra: Any) -> TargetResult:
    """The result of these steps on the one target `t` on `sshd`."""
    t = model.target("t", target or sshd.target())
    return run(make_job(steps, **extra), {"t": t}, files).targets["t"]
