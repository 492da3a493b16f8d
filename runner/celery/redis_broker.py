"""kombu's Redis transport, surviving a Redis outage with a run in flight.

When Redis goes away, Celery closes the broker connection and kombu then restores the
worker's unacknowledged messages (the runs in flight) on it — after it released the
connection, so kombu raised AttributeError ('NoneType' object has no attribute 'hostname')
and the worker died ("Unrecoverable error"). Restoring then would also put back a run that
is still running. Here nothing is restored on a connection that is gone: the messages stay in
Redis's unacked set, and a run whose worker really died comes back after the visibility
timeout (its record says whether it ended).
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis


class QoS(redis.QoS):
    def restore_unacked(self, client: Any = None) -> Any:
        if getattr(self.channel.connection, "client", None) is None:  # released: Redis away
            self._delivered.clear()
            return None
        return super().restore_unacked(client)  # type: ignore[no-untyped-call]


class Channel(redis.Channel):
    QoS = QoS


class Transport(redis.Transport):
    Channel = Channel


class SentinelChannel(redis.SentinelChannel):
    QoS = QoS

    def _sentinel_managed_pool(self, asynchronous: bool = False) -> Any:
        """kombu's pool, following a failover within a second (adapters/sentinel_pool.py)."""
        from runner.adapters.sentinel_pool import FollowingPool

        pool = super()._sentinel_managed_pool(asynchronous)  # type: ignore[no-untyped-call]
        pool.__class__ = FollowingPool
        return pool


class SentinelTransport(redis.SentinelTransport):
    Channel = SentinelChannel
