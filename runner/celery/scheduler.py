"""Runner's beat as Celery's beat service: `celery -A runner.app beat -S
runner.celery.scheduler:Scheduler`; its tick is beat.py's."""

from __future__ import annotations

import logging
from typing import Any

import celery.beat
from celery import Celery

from runner.celery.beat import Beat
from runner.errors import StoreUnavailable
from runner.store.outage import Outage

log = logging.getLogger("runner.beat")


class Scheduler(celery.beat.Scheduler):  # type: ignore[misc]
    """Runner's beat as Celery's beat service. Its tick is Beat's; it returns the seconds
    until the next due instant, which Celery's service sleeps. The schedules are the
    configuration's (Celery's beat_schedule is not read)."""

    def __init__(self, app: Celery, *args: Any, **kwargs: Any) -> None:
        self.beat: Beat | None = None
        self.outage = Outage("beat", log)
        super().__init__(app, *args, **kwargs)

    def setup_schedule(self) -> None:
        self.beat = Beat(self.app.conf.runner_system, self.app)
        self.beat.lease.start()

    def tick(self, *args: Any, **kwargs: Any) -> float:
        assert self.beat is not None
        try:
            self.beat.tick()
        except StoreUnavailable as e:
            self.beat.reaper.lost()
            return self.outage.lost(e)
        self.outage.ok()
        return min(self.beat.idle(), float(self.max_interval))

    def sync(self) -> None:
        """Nothing to save: every firing is in the store as it happens."""

    def close(self) -> None:
        if self.beat is not None:
            self.beat.lease.stop()

    @property
    def info(self) -> str:
        return "runner: the configuration's schedules; one active beat (the store's lock)"
