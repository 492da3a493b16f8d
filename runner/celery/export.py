"""`runner plan --format celery`: the configuration as a Celery configuration module
(`task_queues`, `task_routes`, `beat_schedule`), and the two schedule classes its entries use.

Celery's crontab has no per-entry time zone and its `schedule` counts intervals from the last
run; runner's schedules have a zone each and `every` is aligned to the epoch. `zoned_crontab`
and `aligned_every` are Celery schedules (subclasses of its own) that fire when runner's beat
does, jitter included; the exported module imports them from here.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from celery.schedules import ParseException, crontab, crontab_parser, schedstate, schedule

from runner.celery.message import MAX_PRIORITY, TASK
from runner.config.model import ConfigSet, Schedule
from runner.cron import ALIASES, parse
from runner.desired import duration_text, when

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class zoned_crontab(crontab):  # type: ignore[misc]
    """Celery's crontab matched on the wall clock of `zone`, each firing `delay` seconds
    late (a schedule's jitter offset)."""

    def __init__(self, minute: str, hour: str, day_of_month: str, month_of_year: str,
                 day_of_week: str, zone: str = "UTC", delay: int = 0, **kw: Any) -> None:
        super().__init__(minute, hour, day_of_week, day_of_month, month_of_year, **kw)
        self.zone, self.tz, self.delay = zone, ZoneInfo(zone), delay

    def remaining_estimate(self, last_run_at: datetime, **kw: Any) -> timedelta:
        shift = timedelta(seconds=self.delay)
        return super().remaining_estimate(last_run_at - shift, **kw) + shift  # type: ignore[no-any-return]

    def __reduce__(self) -> tuple[Any, ...]:  # what Celery's beat keeps in its schedule file
        return self.__class__, (self._orig_minute, self._orig_hour, self._orig_day_of_month,
                                self._orig_month_of_year, self._orig_day_of_week, self.zone,
                                self.delay)


class aligned_every(schedule):  # type: ignore[misc]
    """Every `seconds`, at the multiples of it since the Unix epoch (runner's `every`), each
    firing `delay` seconds late; not counted from the last run as Celery's schedule is."""

    def __init__(self, seconds: int, delay: int = 0, **kw: Any) -> None:
        super().__init__(timedelta(seconds=seconds), **kw)
        self.delay = delay

    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        last = self.maybe_make_aware(last_run_at) - timedelta(seconds=self.delay)
        step = self.run_every
        nxt = _EPOCH + ((last - _EPOCH) // step + 1) * step + timedelta(seconds=self.delay)
        return nxt - self.maybe_make_aware(self.now())  # type: ignore[no-any-return]

    def is_due(self, last_run_at: datetime) -> schedstate:
        left = self.remaining_estimate(last_run_at).total_seconds()
        if left > 0:
            return schedstate(False, left)
        return schedstate(True, self.remaining_estimate(self.now()).total_seconds())

    def __reduce__(self) -> tuple[Any, ...]:
        return self.__class__, (int(self.run_every.total_seconds()), self.delay)


def _field(text: str, values: frozenset[int] | tuple[int, ...], low: int, high: int) -> str:
    """A cron field as Celery's crontab reads it to the same values: as written when it
    does, else the values as a list (Celery has no month or weekday names in ranges, reads
    N-N and weekday 7 its own way)."""
    want = set(values)
    if want == set(range(low, high + 1)):
        return "*"
    try:
        if crontab_parser(high + 1, low).parse(text) == want:
            return text
    except (ParseException, ValueError):  # Celery refuses it: the list below
        pass
    return ",".join(str(v) for v in sorted(want))


def _entry(s: Schedule, config: ConfigSet) -> tuple[list[str], dict[str, Any] | None]:
    """Comments and the beat_schedule entry of a schedule (None: Celery cannot express it)."""
    notes = [f"{s.name}: {when(s)} ({s.timezone}), overlap {s.overlap}"]
    if s.jitter:
        notes.append(f"jitter {duration_text(s.jitter)}: each firing "
                     f"{duration_text(s.jitter_offset)} late (delay={s.jitter_offset})")
    if s.at is not None:
        return [*notes, "once: Celery has no one-shot schedule; runner's beat fires it"], None
    job = config.jobs[s.job]
    if s.hashed_cron is not None:
        c, texts = parse(s.hashed_cron), ALIASES.get(s.hashed_cron, s.hashed_cron).split()
        if not c.both_days:
            notes.append("runner (Vixie cron) fires on a day matching day-of-month OR "
                         "day-of-week; Celery's crontab needs both")
        sched: Any = zoned_crontab(
            _field(texts[0], c.minutes, 0, 59), _field(texts[1], c.hours, 0, 23),
            _field(texts[2], c.days, 1, 31), _field(texts[3], c.months, 1, 12),
            _field(texts[4], c.weekdays, 0, 6), zone=s.timezone, delay=s.jitter_offset)
    else:
        assert s.every is not None
        sched = aligned_every(s.every, delay=s.jitter_offset)
    if s.starting_deadline is not None:
        notes.append(f"starting_deadline {duration_text(s.starting_deadline)}: Celery has "
                     "one for all crontabs (beat_cron_starting_deadline)")
    return notes, {"task": TASK, "schedule": sched,
                   "kwargs": {"job": s.job, "revision": config.revision, "limit": s.limit},
                   "options": {"queue": job.queue,
                               "priority": MAX_PRIORITY - config.queues[job.queue].priority}}


def _py(value: Any) -> str:
    """A Python literal of a JSON-like value, strings in double quotes."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_py(k)}: {_py(v)}" for k, v in value.items()) + "}"
    if isinstance(value, zoned_crontab):
        *fields, zone, delay = value.__reduce__()[1]
        return (f"zoned_crontab({', '.join(map(_py, fields))}, zone={_py(zone)}"
                + (f", delay={delay})" if delay else ")"))
    if isinstance(value, aligned_every):
        seconds, delay = value.__reduce__()[1]
        return f"aligned_every({seconds}" + (f", delay={delay})" if delay else ")")
    return "None" if value is None else json.dumps(value)


def module(config: ConfigSet) -> str:
    """The Python source of a Celery configuration module for `config`."""
    queues = sorted(config.queues.values(), key=lambda q: (-q.priority, q.name))
    out = ['"""Celery configuration generated by `runner plan --format celery`',
           f"from revision {config.revision}.", "",
           "Load it with app.config_from_object(MODULE). runner's beat sends each firing's",
           "run_id with its PENDING record; a plain Celery beat sends none, and runner's worker",
           'records the run under the message\'s task id."""', "",
           "from kombu import Queue", "",
           "from runner.celery.export import aligned_every, zoned_crontab", "",
           'timezone = "UTC"', "enable_utc = True", 'task_default_queue = "runner-default"',
           "# message priority 0 is taken first (kombu's Redis transport): 9 - queue priority",
           'broker_transport_options = {"priority_steps": list(range(10)), '
           '"queue_order_strategy": "priority"}', "", "task_queues = ("]
    out += [f"    Queue({_py(q.name)}, routing_key={_py(q.name)}),  # priority {q.priority}"
            for q in queues]
    out += [")", "", f"# {TASK} goes to its job's queue (the job is in its kwargs)",
            "RUNNER_ROUTES = {"]
    out += [f"    {_py(j.name)}: "
            + _py({"queue": j.queue, "priority": MAX_PRIORITY - config.queues[j.queue].priority})
            + "," for j in sorted(config.jobs.values(), key=lambda j: j.name)]
    out += ["}", "", "", "def route_run_job(name, args, kwargs, options, task=None, **kw):",
            f"    if name == {_py(TASK)}:",
            '        return RUNNER_ROUTES.get((kwargs or {}).get("job"))',
            "    return None", "", "", "task_routes = (route_run_job,)", "",
            "beat_schedule = {"]
    for s in sorted(config.schedules.values(), key=lambda s: s.name):
        notes, entry = _entry(s, config)
        out += [f"    # {n}" for n in notes]
        if entry is not None:
            out += [f"    {_py(s.name)}: {{"] + [f"        {_py(k)}: {_py(v)},"
                                                 for k, v in entry.items()] + ["    },"]
    out.append("}")
    return "\n".join(out) + "\n"
