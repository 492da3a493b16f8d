"""`runner backfill`: one run per firing of a schedule in a past (or any) time range.

The firings are the ones `runner plan` computes (the schedule's zone, the Vixie DST rule);
the runs are queued as beat queues them (trigger `backfill`, `scheduled_for` the firing),
honouring the schedule's `overlap`: `allow` queues every firing at once, `forbid` queues the
next one when the one before has ended, `replace` queues only the latest (each would cancel
the one before it).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from runner.config.model import Schedule
from runner.desired import next_fires
from runner.errors import UsageError

MAX_FIRINGS = 1000  # more only with --yes
HARD_MAX = 100_000  # never more, --yes or not: a range that large is a mistake


def firings(s: Schedule, start: datetime, end: datetime, allow_many: bool) -> list[datetime]:
    """The firings of `s` in [start, end], oldest first; UsageError past the maximum."""
    if end < start:
        raise UsageError(f"--to {end.isoformat()} is before --from {start.isoformat()}")
    cap = HARD_MAX if allow_many else MAX_FIRINGS
    out: list[datetime] = []
    cursor = start - timedelta(microseconds=1)  # next_fires is strictly after
    while True:
        batch = next_fires(s, cursor, 256)
        out += [f for f in batch if f <= end]
        if len(out) > cap:
            more = ("" if allow_many else f"; add --yes to queue up to {HARD_MAX}")
            raise UsageError(f"schedule {s.name} fires more than {cap} times from "
                             f"{start.isoformat()} to {end.isoformat()}{more}, or narrow "
                             "the range")
        if len(batch) < 256 or batch[-1] > end:
            return out
        cursor = batch[-1]
