"""A run's Celery message: the one task's name, the priorities it is sent with, and the time
limit of a run (what tasks.py sets and app.py's broker options allow for)."""

from __future__ import annotations

import math

from runner.config.model import Job

TASK = "runner.run_job"
MAX_PRIORITY = 9


def time_limit(job: Job, targets: int, wait: float = 0) -> int:
    """Seconds a run of `job` on `targets` targets may take: every wave of `concurrency`
    targets its full timeout on every attempt, plus the backoffs, plus a minute, plus `wait`:
    the most it may wait for its cluster-wide slots (limits.Gate), so waiting does not use up
    its work's time."""
    waves = max(1, math.ceil(targets / job.concurrency))
    r = job.retries
    backoff = sum(min(r.max_backoff, r.backoff * 2 ** i) for i in range(r.attempts))
    return int(waves * (job.timeout * (r.attempts + 1) + backoff) + 60 + wait)
