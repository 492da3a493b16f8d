"""Runs one job on its targets: fan-out, steps and `when`, timeouts, retries, cancel, breaker.

The engine knows nothing of Celery or git: it takes the job, its targets, the repository files
the job references and a Cancel, and returns a RunResult. One Engine lives as long as its
process (one `runner run`, or a worker), so SSH connections and circuit breakers carry over.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from runner.config.model import Job, SecretRef, Step, Target
from runner.config.params import env as param_env
from runner.config.semantic import repo_known_hosts
from runner.errors import SlotTimeout, TargetError
from runner.executor.attempt import Attempt
from runner.executor.base import (
    Download,
    FileBlob,
    Masker,
    RunResult,
    Spool,
    StepResult,
    TargetResult,
    Transport,
    run_status,
)
from runner.executor.cancel import Cancel
from runner.executor.http import HttpConnector, http_step
from runner.executor.secrets import config_secret, known_secrets
from runner.settings import Settings

Progress = Callable[[str, TargetResult | None], None]
Gate = Callable[[str], contextlib.AbstractAsyncContextManager[None]]
Watch = Callable[[str, Attempt], None]  # told each target's attempt as it begins


@contextlib.asynccontextmanager
async def _open(_target: str) -> AsyncIterator[None]:
    yield


class Connector(Protocol):
    """Makes transports for one kind of target (local, ssh, winrm); may pool connections."""

    def open(self, target: Target, secrets: Mapping[str, str],
             env: Mapping[str, str]) -> Transport: ...

    async def close(self) -> None: ...


@dataclass
class _Breaker:
    failures: int = 0
    opened: float = 0.0
    last: str = ""


class Engine:
    """Runs jobs on targets; one per process, so connections and circuit breakers carry over."""

    def __init__(self, settings: Settings | None = None,
                 connectors: Mapping[str, Connector] | None = None,
                 environ: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 state_dir: Path | None = None) -> None:
        self.settings = settings or Settings()
        self.connectors = dict(connectors or {})
        self.environ = os.environ if environ is None else environ
        # masked in every job's output
        self.known = known_secrets(self.settings, self.environ, state_dir)
        self.clock = clock
        self.breakers: dict[str, _Breaker] = {}

    def connector(self, transport: str) -> Connector:
        if transport not in self.connectors:
            self.connectors[transport] = _default_connector(transport, self.settings)
        return self.connectors[transport]

    async def close(self) -> None:
        for c in self.connectors.values():
            await c.close()

    async def run(self, job: Job, targets: Mapping[str, Target], files: Mapping[str, FileBlob],
                  *, run_id: str, revision: str, cancel: Cancel | None = None,
                  progress: Progress | None = None,
                  params: Mapping[str, Any] | None = None, gate: Gate | None = None,
                  watch: Watch | None = None) -> RunResult:
        """`params`: the run's checked values; every step gets them as RUNNER_PARAM_<NAME>
        in its environment, the only way they reach a target (never in a command's text).
        `gate(target)`: entered before the target's first step (its cluster-wide slots).
        `watch(target, attempt)`: each attempt as it begins (its output so far is readable,
        masked, while it runs)."""
        cancel = cancel or Cancel()
        started = time.time()
        env: dict[str, str] = {}
        secrets: list[str] = []
        env_error: str | None = None
        for key, value in job.env:
            if isinstance(value, SecretRef):
                try:
                    env[key] = config_secret(value, f"job {job.name} env {key}",
                                             self.environ, self.settings)
                    secrets.append(env[key])
                except TargetError as e:
                    env_error = str(e)
            else:
                env[key] = value
        env.update(param_env(params))
        limit = asyncio.Semaphore(job.concurrency)

        async def one(name: str) -> TargetResult:
            try:  # its slots first: a target waiting for one holds none of the permits
                async with (gate or _open)(name), limit:
                    if progress:
                        progress(name, None)
                    result = await work(name)
            except SlotTimeout as e:  # no slot within RUNNER_LIMIT_WAIT_MAX: never run
                result = TargetResult("failed", error=str(e))
            if progress:
                progress(name, result)
            return result

        async def work(name: str) -> TargetResult:
            if env_error:
                return TargetResult("failed", error=f"{name}: not run, {env_error}")
            try:
                return await self._target(name, targets[name], job, files, env, secrets,
                                          cancel, watch)
            except Exception as e:
                # a bug hit by one target must not lose the other targets' results:
                # it is reported as that target's failure, with its type
                masked = Masker([*secrets, *self.known]).text(str(e))
                return TargetResult("failed", error=f"{name}: internal error "
                                    f"{type(e).__name__}: {masked}")

        tasks = {n: asyncio.create_task(one(n)) for n in targets}
        cancel.cancels(tasks.values())
        if tasks:
            await asyncio.wait(tasks.values())
        results = {}
        for name, task in tasks.items():
            if task.cancelled():
                results[name] = TargetResult("cancelled", error=f"{name}: {cancel.reason} "
                                                                 "before it started")
            else:
                results[name] = task.result()
        return RunResult(run_id, job.name, revision, run_status(r.status for r in
                                                                results.values()),
                         started, time.time(), results)

    async def _target(self, name: str, target: Target, job: Job, files: Mapping[str, FileBlob],
                      env: Mapping[str, str], job_secrets: list[str],
                      cancel: Cancel, watch: Watch | None = None) -> TargetResult:
        t0 = self.clock()
        masker = Masker([*job_secrets, *self.known])
        try:
            secrets = {k: config_secret(getattr(target, k), name, self.environ, self.settings)
                       for k in ("password", "passphrase") if getattr(target, k) is not None}
        except TargetError as e:
            return TargetResult("failed", error=masker.text(str(e)), duration=self.clock() - t0)
        masker = Masker([*job_secrets, *secrets.values(), *self.known])
        known = repo_known_hosts(target.known_hosts)  # a repository file, at the run's revision
        if known is not None and known in files:
            secrets["known_hosts"] = files[known].data.decode("utf-8", "replace")
        attempt = 0
        while True:
            attempt += 1
            skip = self._breaker_open(name)
            if skip:
                return TargetResult("skipped", error=skip, attempts=attempt - 1,
                                    duration=self.clock() - t0)
            run = Attempt(name, self.settings.output_cap, masker, target)
            if watch:
                watch(name, run)
            try:
                await self._attempt(run, target, job, files, env, secrets)
            except asyncio.CancelledError:
                if not cancel.is_set():
                    raise
                run.fail("cancelled", f"{name}: {cancel.reason} during step {run.step!r}")
            result = run.result(attempt, self.clock() - t0)
            retry = result.status in ("failed", "timeout") and run.retryable
            if not retry or attempt > job.retries.attempts or cancel.is_set():
                return result
            delay = min(job.retries.max_backoff, job.retries.backoff * 2 ** (attempt - 1))
            try:
                await asyncio.sleep(random.uniform(delay / 2, delay))  # equal jitter
            except asyncio.CancelledError:
                if not cancel.is_set():
                    raise
                return TargetResult("cancelled", error=f"{name}: {cancel.reason} while waiting "
                                    f"to retry (after: {result.error})", attempts=attempt,
                                    duration=self.clock() - t0)

    async def _attempt(self, run: Attempt, target: Target, job: Job,
                       files: Mapping[str, FileBlob], env: Mapping[str, str],
                       secrets: Mapping[str, str]) -> None:
        transport = self.connector(target.transport).open(target, secrets, env)
        try:
            async with asyncio.timeout(job.timeout) as budget:
                try:
                    await transport.connect()
                    self._connected(run.name)
                except TargetError as e:
                    self._connect_failed(run.name, e)
                    raise
                for step in job.steps:
                    if step.when == "always" or (step.when == "on_failure") == run.failed:
                        await self._step(run, transport, step, job, files, env)
        except TimeoutError:
            if not budget.expired():
                raise
            if run.steps and run.steps[-1].status == "cancelled":
                last = run.steps.pop()
                run.steps.append(StepResult(last.name, last.kind, "timeout", None,
                                            last.duration))
            run.fail("timeout", f"{run.name}: timed out after {job.timeout}s in step "
                                f"{run.step!r}; its command was killed", retryable=True)
        except TargetError as e:
            run.fail(e.status, str(e), e.retryable)
        finally:
            await transport.close()

    async def _step(self, run: Attempt, transport: Transport, step: Step, job: Job,
                    files: Mapping[str, FileBlob], env: Mapping[str, str]) -> None:
        run.step = step.name
        t0 = self.clock()
        rc: int | None = None
        status, error = "success", None
        try:
            async with asyncio.timeout(step.timeout) as limit:
                rc = await self._do(run, transport, step, files, env)
            if rc != 0:
                status = "failed"
                error = f"{run.name}: step {step.name!r} exited with status {rc}"
        except TimeoutError:
            if not limit.expired():
                raise
            status = "timeout"
            error = (f"{run.name}: step {step.name!r} timed out after {step.timeout}s; its "
                     "command was killed")
        except TargetError as e:
            status, error = e.status, str(e)
        except asyncio.CancelledError:
            run.steps.append(StepResult(step.name, step.kind, "cancelled", None,
                                        self.clock() - t0))
            raise
        run.steps.append(StepResult(step.name, step.kind, status, rc, self.clock() - t0, error))
        if error:
            run.fail(status, error, retryable=True, rc=rc)

    async def _do(self, run: Attempt, transport: Transport, step: Step,
                  files: Mapping[str, FileBlob], env: Mapping[str, str]) -> int:
        shell = step.shell
        if step.http is not None:  # sent from here, whatever the target's transport
            pool = self.connector("http")
            assert isinstance(pool, HttpConnector)
            return await http_step(run, step.http, pool.threads, files, self.environ,
                                   self.settings)
        if step.kind == "command":
            assert step.command is not None
            return await transport.run(step.command, env, run.out, run.err, shell)
        if step.kind == "script":
            assert step.script is not None
            return await transport.script(files[step.script].data, step.args, env, run.out,
                                          run.err, shell)
        assert step.src is not None
        if step.kind == "upload":
            assert step.dest is not None
            blob = files[step.src]
            await transport.put(blob.data, step.dest, step.mode or blob.mode)
            return 0
        # read a secret's length more, mask, then cut: a secret at the cut is masked whole;
        # streamed into a temporary file (memory stays bounded whatever the size)
        cap = step.max_bytes or self.settings.download_cap
        spool = Spool(cap, run.masker, tempfile.TemporaryFile())  # noqa: SIM115 (Download's)
        cut = await transport.get(step.src, cap + run.masker.hold + 1 if run.masker else cap,
                                  spool)
        spool.end(cut)
        run.downloads.append(Download(step.src, spool.file, spool.size,
                                      cut or spool.dropped > 0))
        return 0

    def _breaker_open(self, name: str) -> str | None:
        b = self.breakers.get(name)
        if b is None or b.failures < self.settings.breaker_threshold:
            return None
        wait = b.opened + self.settings.breaker_cooldown - self.clock()
        if wait <= 0:
            return None  # half-open: one more try
        return (f"{name}: skipped, {b.failures} connection failures in a row "
                f"(last: {b.last}); next try in {wait:.0f}s")

    def _connected(self, name: str) -> None:
        self.breakers.pop(name, None)

    def _connect_failed(self, name: str, error: TargetError) -> None:
        if not error.connect:
            return
        b = self.breakers.setdefault(name, _Breaker())
        b.failures += 1
        b.opened = self.clock()
        b.last = str(error)


def _default_connector(transport: str, settings: Settings) -> Connector:
    if transport == "local":
        from runner.executor.local import LocalConnector
        return LocalConnector(settings)
    if transport == "http":
        return HttpConnector()
    if transport == "ssh":
        from runner.executor.ssh import SshPool
        return SshPool(settings)
    from runner.executor.winrm import WinrmConnector
    connector: Connector = WinrmConnector(settings)
    return connector
