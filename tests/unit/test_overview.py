"""The API's workers view keeps refreshing whatever one refresh raised."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runner.overview import Workers
from runner.state import FileStore


class _Inspect:
    def stats(self) -> dict[str, Any]:
        return {"w-1@h": {"pool": {"max-concurrency": 2}, "total": {}}}

    def active(self) -> dict[str, Any]:
        return {"w-1@h": []}

    def active_queues(self) -> dict[str, Any]:
        return {"w-1@h": [{"name": "q"}]}


def test_a_bug_in_one_refresh_does_not_stop_the_workers_view(tmp_path: Path) -> None:
    calls = []

    @contextlib.contextmanager
    def inspect() -> Iterator[_Inspect]:
        calls.append(1)
        if len(calls) <= 3:  # the first refresh's three broadcasts hit a bug
            raise ValueError("not JSON")
        yield _Inspect()

    workers = Workers(inspect, FileStore(tmp_path / "state"), every=0.01)
    workers.start()
    try:
        deadline = time.monotonic() + 10
        while not workers.view() and time.monotonic() < deadline:
            time.sleep(0.01)  # polls the view (the refresh thread runs every 10 ms)
        assert workers.view()["w-1@h"]["queues"] == ["q"]
    finally:
        workers.stop()
