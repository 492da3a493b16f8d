"""queue_length counts what the broker's transport counts (every priority), and a broker
that is away is one sentence (BrokerError), not a library traceback."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis
from kombu import Exchange, Queue

from runner.celery.app import create_app, queue_length
from runner.errors import BrokerError
from runner.settings import Settings
from runner.system import System
from tests.servers import Redis, free_port


@pytest.mark.parametrize("where", ["embedded", "redis"])
def test_queue_length_counts_messages_of_every_priority(
        where: str, demo_repo: Path, request: pytest.FixtureRequest) -> None:
    url = ""
    if where == "redis":
        server: Redis = request.getfixturevalue("redis_server")
        redis.Redis.from_url(server.url).flushall()
        url = server.url
    app = create_app(System(Settings(redis_url=url), demo_repo, demo_repo / ".runner"))
    queue = Queue("counted", Exchange("counted"), routing_key="counted")
    assert queue_length(app, "counted") == 0
    with app.producer_or_acquire() as producer:
        for priority in (0, 3, 9, 9):
            producer.publish({"n": priority}, exchange=queue.exchange, routing_key="counted",
                             declare=[queue], priority=priority)
    assert queue_length(app, "counted") == 4
    assert queue_length(app, "other") == 0


def test_a_redis_broker_that_is_away_is_a_broker_error(demo_repo: Path) -> None:
    config = System(Settings(), demo_repo, demo_repo / ".runner").config()
    away = f"redis://127.0.0.1:{free_port()}/0"
    app = create_app(System(Settings(redis_url=away), demo_repo, demo_repo / ".runner"), config)
    started = time.monotonic()
    with pytest.raises(BrokerError, match="Redis cannot be reached to count queue 'high'"):
        queue_length(app, "high")
    assert time.monotonic() - started < 3  # an answer, not kombu's retries (4 s)
