"""What one attempt of a job on one target has done: its steps, output, downloads and failure."""

from __future__ import annotations

from runner.config.model import Target
from runner.executor.base import Download, Masker, StepResult, Tail, TargetResult

_RANK = {"success": 0, "failed": 1, "timeout": 2, "cancelled": 3}


class Attempt:
    """What one attempt on one target has done so far (mutable while it runs)."""

    def __init__(self, name: str, cap: int, masker: Masker, target: Target) -> None:
        self.name, self.target = name, target
        self.masker = masker
        self.out, self.err = Tail(cap, masker), Tail(cap, masker)
        self.steps: list[StepResult] = []
        self.downloads: list[Download] = []
        self.step = "connect"
        self.failed = False
        self.status = "success"
        self.error: str | None = None
        self.rc: int | None = None
        self.retryable = False

    def fail(self, status: str, error: str, retryable: bool = False,
             rc: int | None = None) -> None:
        """The first failure explains the target; a later timeout or cancel ends it."""
        if not self.failed or _RANK[status] > _RANK[self.status]:
            self.status, self.error = status, error
        if not self.failed:
            self.rc, self.retryable = rc, retryable
        self.failed = True

    def live(self, cap: int | None = None) -> dict[str, str | None]:
        """Its output so far (masked; each stream's last `cap` bytes) and the step it is in,
        as GET /api/runs/ID/output shows them while it runs."""
        return {"stdout": self.out.peek(cap), "stderr": self.err.peek(cap), "step": self.step}

    def mark(self) -> tuple[int, int, str]:
        """What changes when `live` does."""
        return self.out.seen, self.err.seen, self.step

    def result(self, attempts: int, duration: float) -> TargetResult:
        """What the attempt did, masked (downloads are masked as they come)."""
        masker = self.masker
        rc = self.rc if self.failed else (self.steps[-1].rc if self.steps else None)
        steps = tuple(StepResult(s.name, s.kind, s.status, s.rc, s.duration,
                                 masker.text(s.error) if s.error else None) for s in self.steps)
        return TargetResult(self.status, rc, self.out.text(), self.err.text(), duration,
                            masker.text(self.error) if self.error else None, attempts, steps,
                            tuple(self.downloads))
