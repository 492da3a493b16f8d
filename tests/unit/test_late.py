"""When a run becomes late (celery/late.py): the earlier of its job's deadline from its start
and its schedule's from the firing; when the watcher looks at a run again."""

from __future__ import annotations

import pytest

from runner.celery.late import due, has_deadlines, iso, next_look
from runner.config.load import build
from runner.config.model import ConfigSet
from runner.runs import RunRecord, RunState

FIRING = "2026-12-01T10:00:00+00:00"
T0 = 1796119200.0  # FIRING as Unix time


def config(job: str | None, schedule: str | None) -> ConfigSet:
    j: dict[str, object] = {"queue": "q", "targets": ["here"], "steps": [{"command": "x"}]}
    s: dict[str, object] = {"job": "j", "every": "1h"}
    if job:
        j["deadline"] = job
    if schedule:
        s["deadline"] = schedule
    return build("rev", {"jobs": {"j": j}, "schedules": {"s": s}})


def run(started: float | None, schedule: str | None = "s") -> RunRecord:
    return RunRecord("r1", job="j", state=RunState.STARTED if started else RunState.PENDING,
                     started=started, schedule=schedule,
                     scheduled_for=FIRING if schedule else None)


@pytest.mark.parametrize(("job", "schedule", "started", "expected"), [
    ("10m", None, T0 + 30, T0 + 30 + 600),      # the job's: from the start
    (None, "5m", T0 + 30, T0 + 300),            # the schedule's: from the firing
    ("10m", "5m", T0 + 30, T0 + 300),           # both: the earlier instant
    ("1m", "5m", T0 + 30, T0 + 90),
    ("1m", None, None, None),                   # not started: the job's does not count yet
    ("1m", "5m", None, T0 + 300),
    (None, None, T0, None),
])
def test_due_is_the_earlier_of_the_deadlines(job: str | None, schedule: str | None,
                                             started: float | None,
                                             expected: float | None) -> None:
    assert due(config(job, schedule), run(started)) == expected


def test_a_run_not_started_is_looked_at_again_when_its_job_deadline_could_have_passed() -> None:
    cfg = config("1m", "5m")
    assert next_look(cfg, run(None), T0 + 10) == T0 + 70
    assert next_look(cfg, run(None), T0 + 290) == T0 + 300
    assert next_look(config(None, "5m"), run(None, schedule=None), T0) is None


def test_only_a_configuration_with_a_deadline_is_watched() -> None:
    assert not has_deadlines(config(None, None))
    assert has_deadlines(config("1m", None)) and has_deadlines(config(None, "1m"))
    assert iso(T0 + 0.25) == "2026-12-01T10:00:00.250+00:00"
