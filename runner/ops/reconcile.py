"""The reconciler's loop (`runner reconcile`): once, or following the watched branch (a
local repository's refs are watched and acted on at once, a remote is polled every
interval), a failed fetch tried again soon with a backoff."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from runner.config.cache import DiskCache
from runner.errors import StoreUnavailable
from runner.reconcile import Outcome, reconcile
from runner.store.outage import Outage
from runner.system import System


def exit_code(outcome: Outcome) -> int:
    """0 applied or unchanged, 1 the revision is invalid, 2 the source cannot be fetched."""
    return 0 if not outcome.reason else 2 if outcome.revision is None else 1


class Reconciler:
    """Applies `branch` of `source` to the system's store; `tell` hears each outcome (when
    watching: each new one, once)."""

    def __init__(self, system: System, source: str, branch: str,
                 require_signed: Path | None, tell: Callable[[Outcome], None]) -> None:
        self.store, self.source, self.branch = system.store, source, branch
        self.require_signed, self.tell = require_signed, tell
        self.mirror = system.state_dir / "source.git"
        self.cache = DiskCache(self.mirror)
        self.told: tuple[str | None, str | None] | None = None  # the last outcome told
        self.outage = Outage("reconciler", logging.getLogger("runner.reconcile"))

    def once(self, watching: bool = False) -> int:
        """Reconciles once: its exit code; watching, a store that is away is 2 (and logged)
        instead of an error."""
        try:
            outcome = reconcile(self.store, self.source, self.branch, self.mirror,
                                self.cache, self.require_signed)
        except StoreUnavailable as e:
            if not watching:
                raise
            self.outage.lost(e)  # settle() tries again with its backoff
            return 2
        self.outage.ok()
        self.cache.save()
        news = (outcome.revision, outcome.reason)
        if not (watching and self.told == news and not outcome.changed):
            self.told = news
            self.tell(outcome)
        return exit_code(outcome)

    def settle(self, every: float, stop: threading.Event) -> None:
        """Reconciles; a failed fetch is tried again soon (1 s, 2 s, ...), not in `every`."""
        delay = 1.0
        while self.once(True) == 2 and delay < every and not stop.wait(delay):
            delay *= 2

    def watch(self, every: float, stop: threading.Event) -> None:
        """Reconciles now, on every change of the branch and every `every` seconds, until
        `stop` is set."""
        refs = refs_dir(self.source)
        if refs is None:  # a remote: poll
            self.settle(every, stop)
            while not stop.wait(every):
                self.settle(every, stop)
            return
        import watchfiles  # a local repository: a commit or push changes its refs; act at once

        branch = self.branch

        def ours(_change: object, path: str) -> bool:  # the branch's ref, not the reports'
            return path.endswith(f"/heads/{branch}")

        def stamp() -> tuple[int, ...]:  # the branch's ref as files: loose, or packed
            return tuple(_mtime(f) for f in (refs / "heads" / branch,
                                             refs.parent / "packed-refs"))

        # A commit made before the watch is up (or an event it missed) still shows in the
        # ref's stamp, looked at every second; everything is looked at again every `every`.
        seen, last = stamp(), time.monotonic()
        self.settle(every, stop)
        for changes in watchfiles.watch(refs, watch_filter=ours, debounce=100, step=20,
                                        rust_timeout=1000, yield_on_timeout=True,
                                        stop_event=stop, raise_interrupt=False):
            now = stamp()
            if changes or now != seen or time.monotonic() - last >= every:
                seen, last = now, time.monotonic()
                self.settle(every, stop)


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def refs_dir(source: str) -> Path | None:
    """The refs directory of a local repository (worktree or bare), else None."""
    path = Path(source)
    for git_dir in (path / ".git", path):
        if (git_dir / "refs").is_dir() and (git_dir / "HEAD").exists():
            return git_dir / "refs"
    return None
