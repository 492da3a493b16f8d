"""`runner up`: one command that keeps a whole system running on this machine.

A supervisor of child processes: the reconciler and the report publisher (when there is a git
source), beat, the API, and one `runner worker NAME` per worker of the configuration the
system runs.
It follows the configuration: a worker added by a commit is started, a removed one is stopped
(warm: its runs finish). A child that exits is started again after a backoff (1 s, doubling
to 30 s; back to 1 s once it ran a minute), except a child started with `up` that exits with
status 2 (a usage or environment error) within STARTUP seconds of its first start: that
stops `up`, with the child's last line of stderr as the cause (children's stderr is copied to
`up`'s, line by line). SIGINT or SIGTERM stops them all.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from runner.errors import RunnerError, StoreUnavailable, UsageError
from runner.store.outage import Outage
from runner.system import System

TICK = 0.5        # seconds between looks at the configuration and the children
BACKOFF = (1.0, 30.0)
STEADY = 60.0     # seconds a child must run for its backoff to start over
STOP_GRACE = 30.0  # seconds children get to stop before they are killed
STARTUP = 30.0    # seconds after its first start in which a child's status 2 stops up
log = logging.getLogger("runner.up")


@dataclass(frozen=True)
class Plan:
    """What `up` runs, apart from the workers (those follow the configuration)."""

    repo: Path
    source: str | None       # what the reconciler watches (None: no reconciler, no publisher)
    branch: str
    report_branch: str
    report_source: str | None  # --source for the publisher, when not the repository itself
    api_bind: str | None = None  # where `runner api` listens (None: no API)
    push: str | None = None      # --push for the publisher
    require_signed: str | None = None  # --require-signed for the reconciler

    def commands(self, workers: list[str] | None) -> dict[str, list[str]]:
        """The children to run; beat and the workers only once there is a configuration to
        run (`workers` not None)."""
        # -P: nothing of the working directory (often the configuration repository) is
        # importable; not -I, which would also drop PYTHONPATH, the operator's to set.
        base = [sys.executable, "-P", "-m", "runner"]
        repo = ["--repo", str(self.repo)]
        out = {}
        if self.source:
            out["reconciler"] = [*base, "reconcile", "--watch", "--source", self.source,
                                 "--branch", self.branch, *repo,
                                 *(["--require-signed", self.require_signed]
                                   if self.require_signed else [])]
        if workers is not None:
            out["beat"] = [*base, "beat", *repo]
        if self.api_bind:
            out["api"] = [*base, "api", *repo, "--bind", self.api_bind]
        out |= {f"worker {name}": [*base, "worker", name, *repo] for name in workers or ()}
        if self.source:
            out["publisher"] = [*base, "publish", "--watch", *repo, "--report-branch",
                                self.report_branch, *(["--source", self.report_source]
                                                      if self.report_source else []),
                                *(["--push", self.push] if self.push else [])]
        return out


class _Tee:
    """Copies a child's stderr to ours as it comes and keeps its last line: why it exited."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.last = b""
        self._thread = threading.Thread(target=self._copy, args=(stream,), daemon=True)
        self._thread.start()

    def _copy(self, stream: IO[bytes]) -> None:
        with stream:
            for line in stream:
                with contextlib.suppress(OSError, ValueError):  # our stderr is gone
                    sys.stderr.write(line.decode(errors="replace"))
                    sys.stderr.flush()
                if line.strip():
                    self.last = line

    def join(self, timeout: float = 2.0) -> None:
        self._thread.join(timeout)  # the rest of the pipe, once the child exited

    def said(self) -> str:
        self.join()
        return self.last.decode(errors="replace").strip().removeprefix("error: ")


def _spawn(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, stderr=subprocess.PIPE)


@dataclass
class _Child:
    argv: list[str]
    first: bool  # started with up and not yet exited: a status 2 is a setup error
    proc: subprocess.Popen[bytes] | None = None
    tee: _Tee | None = None
    started: float = 0.0
    backoff: float = BACKOFF[0]
    retry_at: float = 0.0


@dataclass
class Supervisor:
    """Not frozen: it owns the child processes."""

    spawn: Callable[[list[str]], subprocess.Popen[bytes]] = _spawn
    clock: Callable[[], float] = time.monotonic
    children: dict[str, _Child] = field(default_factory=dict)
    leaving: list[subprocess.Popen[bytes]] = field(default_factory=list)
    steps: int = 0

    def step(self, wanted: Mapping[str, list[str]]) -> None:
        """Starts, stops and restarts children; a UsageError when a child of up's start
        exited with status 2 (the caller stops the others)."""
        now = self.clock()
        self.steps += 1
        for name in [n for n in self.children if n not in wanted]:
            child = self.children.pop(name)
            if child.proc and child.proc.poll() is None:
                log.warning("runner up: stopping %s (no longer in the configuration)", name)
                child.proc.terminate()
                self.leaving.append(child.proc)
        self.leaving = [p for p in self.leaving if p.poll() is None]
        for name, argv in wanted.items():
            child = self.children.setdefault(name, _Child(argv, first=self.steps == 1))
            if child.proc is not None and child.proc.poll() is not None:
                code = child.proc.returncode
                if code == 2 and child.first and now - child.started < STARTUP:
                    said = child.tee.said() if child.tee else ""
                    raise UsageError(f"{name} failed at start (exit status 2)"
                                     f"{f': {said}' if said else ''}")
                child.first = False
                if now - child.started >= STEADY:
                    child.backoff = BACKOFF[0]
                child.retry_at = now + child.backoff
                log.warning("runner up: %s exited with status %s; starting it again in %.0fs",
                            name, code, child.backoff)
                child.backoff = min(BACKOFF[1], child.backoff * 2)
                child.proc = None
            if child.proc is None and now >= child.retry_at:
                child.proc, child.started = self.spawn(argv), now
                stream = child.proc.stderr
                child.tee = _Tee(stream) if stream is not None else None

    def stop(self) -> None:
        procs = [c.proc for c in self.children.values() if c.proc] + self.leaving
        for p in procs:
            if p.poll() is None:
                p.terminate()
        deadline = self.clock() + STOP_GRACE
        for p in procs:
            try:
                p.wait(max(0.1, deadline - self.clock()))
            except subprocess.TimeoutExpired:
                p.kill()
        drained = self.clock() + 2.0  # their last lines reach our stderr before we exit
        for tee in [c.tee for c in self.children.values() if c.tee]:
            tee.join(max(0.0, drained - self.clock()))


def serve(system: System, plan: Plan, stop: threading.Event,
          supervisor: Supervisor | None = None) -> None:
    """Runs the plan's children until `stop` is set, following the configuration; a
    UsageError, all stopped, when a child fails at start (Supervisor.step)."""
    sup = supervisor or Supervisor()
    workers: list[str] | None = None  # None: no configuration to run yet
    told = ""
    outage, retry_at = Outage("runner up", log), 0.0
    try:
        while True:
            try:
                if time.monotonic() >= retry_at:
                    workers = list(system.config().workers)
                    outage.ok()
            except StoreUnavailable as e:  # the children ride it out too: keep them
                retry_at = time.monotonic() + outage.lost(e)
            except RunnerError as e:  # an invalid --repo, or nothing signed, and nothing
                if str(e) != told:    # applied: keep what runs
                    told = str(e)
                    log.warning("runner up: %s: %s", "keeps its workers" if workers is not None
                                else "starts no beat and no worker yet", e)
            sup.step(plan.commands(workers))
            if stop.wait(TICK):
                return
    finally:
        sup.stop()
