"""What the runtime asks a loaded configuration: which job a name means, which targets it runs on.

Shared by every way of running a job (a worker, `runner run`, its `--dry-run`), so all of them
refuse the same names and narrow `--limit` the same way.
"""

from __future__ import annotations

from runner.config.model import ConfigSet, Job
from runner.config.schema import did_you_mean
from runner.config.semantic import TargetIndex, selector_error
from runner.errors import UsageError


def lookup(config: ConfigSet, name: str) -> Job:
    """The job called `name`, or a UsageError naming the jobs (and workflows) there are."""
    job = config.jobs.get(name)
    if job is None:
        flows = f"; workflows: {', '.join(config.workflows)}" if config.workflows else ""
        raise UsageError(f"there is no job {name!r}"
                         f"{did_you_mean(name, [*config.jobs, *config.workflows])} "
                         f"(jobs: {', '.join(config.jobs) or 'none'}{flows})")
    return job


def select(config: ConfigSet, job: Job, limit: str | None) -> list[str]:
    """The job's targets, narrowed by a --limit of comma-separated selectors."""
    index = TargetIndex({n: config.raw["targets"][n] for n in config.targets})
    chosen = index.resolve(job.targets)
    if limit is None:
        return chosen
    wanted: set[str] = set()
    for selector in (s.strip() for s in limit.split(",") if s.strip()):
        problem = selector_error(selector)
        if problem:
            raise UsageError(f"--limit {selector!r}: {problem}")
        wanted |= index.match(selector)
    narrowed = [t for t in chosen if t in wanted]
    if not narrowed:
        raise UsageError(f"--limit {limit!r} matches none of job {job.name!r}'s targets "
                         f"({', '.join(chosen)})")
    return narrowed


def slots(config: ConfigSet, job: Job, targets: list[str]) -> dict[str, list[tuple[str, int]]]:
    """The semaphore slots a run of `job` takes, (name, max): under "" its job-level one
    (max_active), and per target its max_runs and the named limits that select it."""
    index = TargetIndex({n: config.raw["targets"][n] for n in config.targets})
    named = [(f"limit {lim.name}", lim.max, set(index.resolve(lim.targets)))
             for lim in config.limits.values()]
    out: dict[str, list[tuple[str, int]]] = {
        "": [(f"job {job.name}", job.max_active)] if job.max_active else []}
    for t in targets:
        mine = [(name, n) for name, n, chosen in named if t in chosen]
        max_runs = config.targets[t].max_runs
        out[t] = ([(f"target {t}", max_runs)] if max_runs else []) + mine
    return out


def waits(config: ConfigSet, job: Job, targets: list[str]) -> bool:
    """Whether a run of `job` on `targets` takes a cluster-wide slot (and so may wait)."""
    known = [t for t in targets if t in config.targets]  # a target removed since: none
    return bool(job.max_active or any(config.targets[t].max_runs for t in known)
                or (config.limits and any(slots(config, job, known).values())))
