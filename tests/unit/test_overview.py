"""The API's workers view keeps refreshing whatever one refresh raised."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runner.ops.overview import Workers
from runner.store.files import FileStore


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


def test_the_workers_view_is_refreshed_often_only_while_someone_looks(tmp_path: Path) -> None:
    @contextlib.contextmanager
    def inspect() -> Iterator[_Inspect]:
        yield _Inspect()

    clients = [False]
    workers = Workers(inspect, FileStore(tmp_path / "state"), every=2.0, idle_every=60.0,
                      watched=lambda: clients[0])
    waits: list[float] = []

    class Wake:  # the refresh thread's pause, recorded; the third one stops it
        def wait(self, timeout: float) -> bool:
            waits.append(timeout)
            if len(waits) == 1:
                workers.view()  # someone reads the view
            if len(waits) == 2:
                clients[0] = True  # a live-event client, no read for a minute
                workers._read -= 61
            if len(waits) == 3:
                workers.stop()
            return True

        def set(self) -> None: ...

        def clear(self) -> None: ...

    workers._wake = Wake()  # type: ignore[assignment]
    workers.start()
    assert workers._thread is not None
    workers._thread.join(10)
    assert waits == [60.0, 2.0, 2.0]  # nobody: a minute; read: 2 s; a live client: 2 s
