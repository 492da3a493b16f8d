"""The API's live events outlive a store that fails between announcing a change and the read
of what changed (a Redis outage starting): the change is skipped, the next ones still reach
the clients, and the hub's task does not die (which also failed the API's shutdown)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from runner.api.events import Hub
from runner.errors import StoreUnavailable
from runner.runs import RunRecord


class FlakyStore:
    """Announces two run changes; reading the first fails as Redis going away does."""

    def run(self, run_id: str) -> RunRecord | None:
        if run_id == "gone":
            raise StoreUnavailable("Redis is unavailable: connection refused (the test's)")
        return RunRecord.from_json({"run_id": run_id, "job": "j", "state": "SUCCESS"})

    async def changes(self) -> AsyncIterator[dict[str, Any]]:
        for run_id in ("gone", "next"):
            yield {"kind": "run", "run_id": run_id}
        await asyncio.Event().wait()  # no more changes: until cancelled


def test_a_store_failure_while_enriching_a_change_skips_only_that_change() -> None:
    async def scenario() -> dict[str, Any]:
        hub = Hub(FlakyStore())  # type: ignore[arg-type]
        client = hub.subscribe()
        task = asyncio.create_task(hub.run())
        try:
            text = await asyncio.wait_for(client.get(), 10)
            assert not task.done(), task.exception()
        finally:
            task.cancel()
        return dict(json.loads(str(text)))

    event = asyncio.run(scenario())
    assert event["run_id"] == "next" and event["state"] == "SUCCESS"
