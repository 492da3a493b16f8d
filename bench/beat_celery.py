"""bench/beat_scale.py's Celery side: Celery's own beat over the schedules in the JSON file
BENCH_SCHEDULES (`crons`: [name, minute, hour, zone]; `changed`: an entry due at once), on the
Redis BENCH_REDIS. Celery's crontab has no per-entry time zone (its `nowfun` changes the clock,
the fields are still matched in app.timezone), so `zoned` sets the entry's own `tz`."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from zoneinfo import ZoneInfo

from celery import Celery
from celery.schedules import crontab


class zoned(crontab):  # type: ignore[misc]  # crontab matched in the entry's own zone
    def __init__(self, minute: int, hour: int, zone: str) -> None:
        super().__init__(minute, hour)
        self.zone, self.tz = zone, ZoneInfo(zone)

    def __reduce__(self) -> tuple[type, tuple[object, object, str]]:  # the schedule file's
        return self.__class__, (self._orig_minute, self._orig_hour, self.zone)


app = Celery("benchmod", broker=os.environ["BENCH_REDIS"])
app.conf.update(timezone="UTC", enable_utc=True)
with open(os.environ["BENCH_SCHEDULES"]) as f:
    doc = json.load(f)
app.conf.beat_schedule = {
    name: {"task": "bench.daily", "schedule": zoned(m, h, z), "options": {"queue": "cron"}}
    for name, m, h, z in doc["crons"]}
app.conf.beat_schedule["tick"] = {"task": "bench.tick", "schedule": timedelta(seconds=2),
                                  "options": {"queue": "every"}}
if doc.get("changed"):
    app.conf.beat_schedule[doc["changed"]] = {
        "task": "bench.changed", "schedule": timedelta(seconds=1),
        "options": {"queue": "changed"}}
