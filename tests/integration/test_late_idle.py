"""The deadline watcher on an idle embedded store: while no run record was written since its
last look, a look lists no run file (one stat of runs/); a run written after is read."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from runner.celery.late import Deadlines
from runner.config.load import build
from runner.runs import RunRecord, RunState
from runner.store.files import FileStore


class Counted(FileStore):
    """The embedded store, counting its reads of the newest runs."""

    looks = 0

    def runs_page(self, *args: Any, **kwargs: Any) -> Any:
        self.looks += 1
        return super().runs_page(*args, **kwargs)


def test_an_idle_embedded_store_is_not_listed_at_each_look(tmp_path: Path) -> None:
    from runner.runs import new_run_id

    store = Counted(tmp_path / "state")
    config = build("rev1", {"jobs": {"tardy": {"queue": "q", "targets": ["here"],
                                               "deadline": "1s", "steps": [{"command": "x"}]}}})
    watcher, now = Deadlines(store), time.time()
    assert watcher.tick(config, now) == []  # runs/ was just made: read (its time may not tell)
    os.utime(store.root / "runs", (now - 60, now - 60))  # nothing written for a minute
    assert watcher.tick(config, now + 2) == []
    looks = store.looks
    for i in range(3):
        assert watcher.tick(config, now + 4 + 2 * i) == []
    assert store.looks == looks  # idle: not read again
    running = RunRecord(new_run_id(now + 9), job="tardy", state=RunState.STARTED,
                        created=now + 9, started=now + 9)
    store.save_run(running)
    assert watcher.tick(config, now + 12) == [running.run_id]
    assert store.looks == looks + 1
