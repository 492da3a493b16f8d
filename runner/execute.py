"""`runner run JOB`: one job of a loaded configuration, run in this process (no broker).

Gathers what the engine needs (targets, the repository files the job references), runs it on
a fresh event loop with Ctrl-C and SIGTERM turned into a clean cancel, and stores downloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import secrets
import signal
import time
from pathlib import Path
from typing import Protocol

from runner.config.model import ConfigSet, Job
from runner.dryrun import lookup, select
from runner.executor.base import FileBlob, RunResult
from runner.executor.engine import Cancel, Engine, Progress
from runner.settings import Settings


class Readable(Protocol):
    def read(self, path: str) -> tuple[bytes, int]: ...


def new_run_id(now: float | None = None) -> str:
    """Sortable by start time: milliseconds in hex, then 32 random bits."""
    millis = int((time.time() if now is None else now) * 1000)
    return f"{millis:012x}-{secrets.token_hex(4)}"


def job_paths(job: Job) -> list[str]:
    """The repository files the job's script and upload steps send to targets."""
    paths = {s.script if s.kind == "script" else s.src for s in job.steps
             if s.kind in ("script", "upload")}
    return sorted(p for p in paths if p)


def job_files(source: Readable, job: Job) -> dict[str, FileBlob]:
    return {p: FileBlob(*source.read(p)) for p in job_paths(job)}


def more_files() -> None:
    """Raise the soft open-files limit to the hard one: one socket per connected target."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else hard
    if soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def run_now(config: ConfigSet, source: Readable, name: str, limit: str | None,
            settings: Settings, progress: Progress | None = None) -> RunResult:
    job = lookup(config, name)
    chosen = select(config, job, limit)
    files = job_files(source, job)
    cancel = Cancel()
    more_files()

    async def main() -> RunResult:
        loop = asyncio.get_running_loop()
        for sig, why in ((signal.SIGINT, "cancelled by Ctrl-C"),
                         (signal.SIGTERM, "cancelled by SIGTERM")):
            loop.add_signal_handler(sig, cancel.set, why)
        engine = Engine(settings)
        try:
            return await engine.run(job, {n: config.targets[n] for n in chosen}, files,
                                    run_id=new_run_id(), revision=config.revision,
                                    cancel=cancel, progress=progress)
        finally:
            await engine.close()

    return asyncio.run(main())


def save_downloads(result: RunResult, under: Path) -> dict[tuple[str, str], Path]:
    """Writes each downloaded file to UNDER/RUN_ID/TARGET/<src with / as _>."""
    saved = {}
    for target, t in result.targets.items():
        for d in t.downloads:
            path = under / result.run_id / target / re.sub(r"[^A-Za-z0-9._-]", "_",
                                                             d.src.lstrip("/"))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(d.data)
            saved[(target, d.src)] = path
    return saved


def relative(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)
