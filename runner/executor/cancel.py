"""A run's cancellation signal: set from any thread, it cancels the run's asyncio tasks."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterable
from typing import Any


class Cancel:
    """A cancellation signal, settable from any thread (a signal handler, a worker's control).
    Setting it cancels the asyncio tasks handed to `cancels`, each on its own loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._set = False
        self._tasks: list[asyncio.Task[Any]] = []
        self.reason = "cancelled"

    def set(self, reason: str = "cancelled") -> None:
        with self._lock:
            if self._set:
                return
            self.reason, self._set = reason, True
            tasks, self._tasks = self._tasks, []
        for task in tasks:
            with contextlib.suppress(RuntimeError):  # that loop is already closed
                task.get_loop().call_soon_threadsafe(task.cancel)

    def is_set(self) -> bool:
        return self._set

    def cancels(self, tasks: Iterable[asyncio.Task[Any]]) -> None:
        """Cancel `tasks` when this is set (at once if it already is)."""
        with self._lock:
            if not self._set:
                self._tasks.extend(tasks)
                return
        for task in tasks:
            task.cancel()
