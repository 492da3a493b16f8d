"""`runner run JOB`: one job of a loaded configuration, run in this process (no broker).

Gathers what the engine needs (targets, the repository files the job references), runs it on
a fresh event loop with Ctrl-C, SIGTERM and `runner cancel` turned into a clean cancel, stores
downloads, and records the run in the state store as a worker would (Audit), so it reaches
`runner history` and the report branch.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import re
import resource
import signal
import socket
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from runner.config.model import ConfigSet, Job, Target
from runner.config.query import lookup, select
from runner.config.semantic import repo_known_hosts
from runner.errors import RunnerError
from runner.executor.base import FileBlob, RunResult
from runner.executor.cancel import Cancel
from runner.executor.engine import Engine, Progress
from runner.runs import RunRecord, RunState, new_run_id
from runner.settings import Settings
from runner.store import Store, keys

_POLL = 0.25  # seconds between looks for a cancel request in the store
T = TypeVar("T")


class Readable(Protocol):
    """A source of repository files (a snapshot, a directory)."""

    def read(self, path: str) -> tuple[bytes, int]: ...


def job_paths(job: Job, targets: Iterable[Target] = ()) -> list[str]:
    """The repository files the job's script and upload steps send to targets, its http
    steps' ca_files, and the known_hosts files of the repository that `targets` are checked
    against."""
    paths = {s.script if s.kind == "script" else s.src for s in job.steps
             if s.kind in ("script", "upload")}
    paths |= {s.http.ca_file for s in job.steps if s.http and s.http.ca_file}
    paths |= {repo_known_hosts(t.known_hosts) for t in targets if t.transport == "ssh"}
    return sorted(p for p in paths if p)


def job_files(source: Readable, job: Job, targets: Iterable[Target] = ()
              ) -> dict[str, FileBlob]:
    """The repository files `job` on `targets` needs, read from `source`."""
    return {p: FileBlob(*source.read(p)) for p in job_paths(job, targets)}


def more_files() -> None:
    """Raise the soft open-files limit to the hard one: one socket per connected target."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else hard
    if soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def run_now(config: ConfigSet, source: Readable, name: str, limit: str | None,
            settings: Settings, progress: Progress | None = None, run_id: str | None = None,
            asked: Callable[[], str | None] = lambda: None,
            state_dir: Path | None = None,
            params: dict[str, Any] | None = None) -> RunResult:
    """Runs job `name`; `asked` (polled) says who requested a cancel, or None; `state_dir`
    holds the API token `runner api` generated (masked in the output like every secret
    runner knows)."""
    job = lookup(config, name)
    chosen = select(config, job, limit)
    files = job_files(source, job, (config.targets[n] for n in chosen))
    cancel = Cancel()
    more_files()

    async def main() -> RunResult:
        loop = asyncio.get_running_loop()
        for sig, why in ((signal.SIGINT, "cancelled by Ctrl-C"),
                         (signal.SIGTERM, "cancelled by SIGTERM")):
            loop.add_signal_handler(sig, cancel.set, why)

        def watch() -> None:
            if who := asked():
                cancel.set(f"cancelled by {who}")
            else:
                timer[0] = loop.call_later(_POLL, watch)

        timer = [loop.call_later(_POLL, watch)]
        engine = Engine(settings, state_dir=state_dir)
        try:
            return await engine.run(job, {n: config.targets[n] for n in chosen}, files,
                                    run_id=run_id or new_run_id(), revision=config.revision,
                                    cancel=cancel, progress=progress, params=params)
        finally:
            timer[0].cancel()
            await engine.close()

    return asyncio.run(main())


class Audit:
    """The record of a direct run in the state store, written as a worker writes it: STARTED
    (trigger `cli`, worker `cli-PID@HOST`, so tasks.sweep_orphans ends a killed one), then
    the final state with the result and downloaded files, which queues it for the report
    branch. Best effort: this is the break-glass path, so a store that cannot be reached
    costs the record, with one warning, never the run."""

    def __init__(self, connect: Callable[[], Store], run_id: str,
                 warn: Callable[[str], None]) -> None:
        self.run_id, self.warn = run_id, warn
        self.store: Store | None = None
        self.store = self._guard(connect, "is not recorded")

    def _guard(self, write: Callable[[], T], what: str) -> T | None:
        from redis.exceptions import RedisError

        try:
            return write()
        except (RunnerError, OSError, RedisError) as e:
            self.store = None  # one warning: nothing more is tried
            self.warn(f"warning: run {self.run_id} {what}: {e}")
            return None

    def begin(self, config: ConfigSet, job: Job, targets: list[str],
              limit: str | None, params: dict[str, Any] | None = None) -> None:
        store, now = self.store, time.time()
        asked = {} if params is None else {"params": params}
        if store is not None:
            self._guard(lambda: store.save_run(RunRecord.from_json({
                "run_id": self.run_id, "job": job.name, "revision": config.revision,
                "trigger": "cli", "state": RunState.STARTED, "queue": job.queue, "targets": targets,
                "limit": limit, "created": now, "started": now, "deliveries": 1,
                "worker": f"cli-{os.getpid()}@{socket.gethostname()}", **asked})),
                "is not recorded")

    def asked(self) -> str | None:
        """Who requested this run's cancel (`runner cancel`, the API), or None."""
        store = self.store
        return None if store is None else self._guard(
            lambda: store.cancel_requested(self.run_id),
            "can no longer be cancelled from the store, and its end is not recorded")

    def end(self, result: RunResult) -> None:
        store = self.store
        if store is not None:
            self._guard(lambda: store.update_run(self.run_id, final(store, result)),
                        "is recorded as STARTED but its end is not")


def final(store: Store, result: RunResult) -> dict[str, Any]:
    """The fields a finished run's record gets: state, result (downloads kept in the store),
    and the first target errors."""
    failed = [t.error for t in result.targets.values() if t.error]
    return {"state": {"success": RunState.SUCCESS, "cancelled": RunState.REVOKED}.get(
                result.status, RunState.FAILURE),
            "finished": time.time(), "revision": result.revision,
            "result": keep_downloads(store, result), "error": "; ".join(failed[:3]) or None}


def keep_downloads(store: Store, result: RunResult) -> dict[str, Any]:
    """The result's record form, each downloaded file's bytes kept in the store for the
    report branch (`download:RUN_ID:SHA256`, deleted with the run's record) and named by
    its sha256 in the record. Bytes are bounded by the download step's max_bytes
    (RUNNER_DOWNLOAD_CAP) and masked by the engine."""
    out = result.as_dict()
    for name, t in result.targets.items():
        for d, entry in zip(t.downloads, out["targets"][name]["downloads"], strict=True):
            data = d.data()  # a store value is whole: in memory here, once
            sha = hashlib.sha256(data).hexdigest()
            store.put(keys.download(result.run_id, sha),
                      {"data": base64.b64encode(data).decode()})
            del data
            entry["sha256"] = sha
    return out


def save_downloads(result: RunResult, under: Path) -> dict[tuple[str, str], Path]:
    """Writes each downloaded file to UNDER/RUN_ID/TARGET/<src with / as _>."""
    saved = {}
    for target, t in result.targets.items():
        for d in t.downloads:
            path = under / result.run_id / target / re.sub(r"[^A-Za-z0-9._-]", "_",
                                                             d.src.lstrip("/"))
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as f:
                f.writelines(d.chunks())
            saved[(target, d.src)] = path
    return saved


def relative(path: Path) -> str:
    """`path` relative to the working directory when it can be, else as it is."""
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)
