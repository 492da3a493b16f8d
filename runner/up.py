"""`runner up`: one command that keeps a whole system running on this machine.

A supervisor of child processes: the reconciler and the report publisher (when there is a git
source), beat, the API, and one `runner worker NAME` per worker of the configuration the
system runs.
It follows the configuration: a worker added by a commit is started, a removed one is stopped
(warm: its runs finish). A child that exits is started again after a backoff (1 s, doubling
to 30 s; back to 1 s once it ran a minute). SIGINT or SIGTERM stops them all.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from runner.celery_app import System
from runner.errors import RunnerError

TICK = 0.5        # seconds between looks at the configuration and the children
BACKOFF = (1.0, 30.0)
STEADY = 60.0     # seconds a child must run for its backoff to start over
STOP_GRACE = 30.0  # seconds children get to stop before they are killed
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

    def commands(self, workers: list[str]) -> dict[str, list[str]]:
        base = [sys.executable, "-m", "runner"]
        repo = ["--repo", str(self.repo)]
        out = {}
        if self.source:
            out["reconciler"] = [*base, "reconcile", "--watch", "--source", self.source,
                                 "--branch", self.branch, *repo]
        out["beat"] = [*base, "beat", *repo]
        if self.api_bind:
            out["api"] = [*base, "api", *repo, "--bind", self.api_bind]
        out |= {f"worker {name}": [*base, "worker", name, *repo] for name in workers}
        if self.source:
            out["publisher"] = [*base, "publish", "--watch", *repo, "--report-branch",
                                self.report_branch, *(["--source", self.report_source]
                                                      if self.report_source else []),
                                *(["--push", self.push] if self.push else [])]
        return out


@dataclass
class _Child:
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    backoff: float = BACKOFF[0]
    retry_at: float = 0.0


@dataclass
class Supervisor:
    """Not frozen: it owns the child processes."""

    spawn: Callable[[list[str]], subprocess.Popen[bytes]] = subprocess.Popen
    clock: Callable[[], float] = time.monotonic
    children: dict[str, _Child] = field(default_factory=dict)
    leaving: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def step(self, wanted: Mapping[str, list[str]]) -> None:
        now = self.clock()
        for name in [n for n in self.children if n not in wanted]:
            child = self.children.pop(name)
            if child.proc and child.proc.poll() is None:
                log.warning("runner up: stopping %s (no longer in the configuration)", name)
                child.proc.terminate()
                self.leaving.append(child.proc)
        self.leaving = [p for p in self.leaving if p.poll() is None]
        for name, argv in wanted.items():
            child = self.children.setdefault(name, _Child(argv))
            if child.proc is not None and child.proc.poll() is not None:
                if now - child.started >= STEADY:
                    child.backoff = BACKOFF[0]
                child.retry_at = now + child.backoff
                log.warning("runner up: %s exited with status %s; starting it again in %.0fs",
                            name, child.proc.returncode, child.backoff)
                child.backoff = min(BACKOFF[1], child.backoff * 2)
                child.proc = None
            if child.proc is None and now >= child.retry_at:
                child.proc, child.started = self.spawn(argv), now

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


def serve(system: System, plan: Plan, stop: threading.Event,
          supervisor: Supervisor | None = None) -> None:
    """Runs the plan's children until `stop` is set, following the configuration."""
    sup = supervisor or Supervisor()
    workers: list[str] = []
    try:
        while True:
            try:
                workers = list(system.config().workers)
            except RunnerError as e:  # an invalid --repo and nothing applied: keep what runs
                log.warning("runner up: keeps its workers: %s", e)
            sup.step(plan.commands(workers))
            if stop.wait(TICK):
                return
    finally:
        sup.stop()
