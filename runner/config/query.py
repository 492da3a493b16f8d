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
