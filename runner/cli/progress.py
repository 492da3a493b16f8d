"""What `runner run` shows while it runs and when it is done.

At a terminal: a live rich progress line (done, failed, running, elapsed) on stderr. Otherwise,
or with --format json: one plain line per finished target on stderr. The final text report
goes to stdout.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from runner.executor.base import RunResult, TargetResult

if TYPE_CHECKING:
    from rich.console import Console

_MARK = {"success": "ok", "failed": "FAILED", "timeout": "TIMEOUT", "cancelled": "CANCELLED",
         "skipped": "SKIPPED"}


class Counter:
    """Targets done, failed and running of a run, for its progress line."""

    def __init__(self, total: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.done, self.failed, self.running = total, 0, 0, 0
        self.clock = clock
        self.started = clock()

    def update(self, result: TargetResult | None) -> None:
        if result is None:
            self.running += 1
            return
        self.running -= 1
        self.done += 1
        self.failed += result.status != "success"

    def line(self) -> str:
        return (f"{self.done}/{self.total} done, {self.failed} failed, {self.running} running, "
                f"{self.clock() - self.started:.1f}s")


class Plain:
    """One line per finished target, for logs and pipes."""

    def __init__(self, total: int, stream: IO[str] | None = None) -> None:
        self.count = Counter(total)
        self.stream = stream or sys.stderr

    def __enter__(self) -> Plain:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __call__(self, name: str, result: TargetResult | None) -> None:
        self.count.update(result)
        if result is not None:
            detail = f": {result.error}" if result.error else ""
            print(f"[{self.count.line()}] {name} {_MARK[result.status]}{detail}",
                  file=self.stream, flush=True)


class Live:
    """A live progress bar at a terminal (rich), on stderr. Its line is drawn afresh at each
    refresh, so the elapsed time moves while no target ends."""

    def __init__(self, total: int, console: Console | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        from rich import console as rich_console
        from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn
        from rich.text import Text

        count = self.count = Counter(total, clock)

        class Line(ProgressColumn):
            def render(self, task: object) -> Text:
                return Text(count.line())

        self.bar = Progress(Line(), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                            console=console or rich_console.Console(stderr=True), transient=True)
        self.task = self.bar.add_task("", total=total)

    def __enter__(self) -> Live:
        self.bar.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.bar.stop()

    def __call__(self, name: str, result: TargetResult | None) -> None:
        self.count.update(result)
        self.bar.update(self.task, completed=self.count.done)
        if result is not None and result.status != "success":
            self.bar.console.print(f"{name} {_MARK[result.status]}: {result.error}")


def report(result: RunResult, saved: dict[tuple[str, str], Any]) -> list[str]:
    """The finished run in words: one block per target with its output."""
    counts: dict[str, int] = {}
    for t in result.targets.values():
        counts[t.status] = counts.get(t.status, 0) + 1
    lines = []
    for name, t in result.targets.items():
        rc = "" if t.rc is None else f" rc {t.rc}"
        lines.append(f"{_MARK[t.status]:<9} {name}{rc} ({t.duration:.2f}s"
                     f"{f', {t.attempts} attempts' if t.attempts > 1 else ''})")
        if t.error:
            lines.append(f"    error: {t.error}")
        lines += [f"    | {line}" for line in t.stdout.splitlines()]
        lines += [f"    ! {line}" for line in t.stderr.splitlines()]
        for d in t.downloads:
            cut = " (cut at the size cap)" if d.truncated else ""
            lines.append(f"    downloaded {d.src}: {d.size} bytes -> "
                         f"{saved[(name, d.src)]}{cut}")
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    lines.append(f"run {result.run_id} of {result.job} at {result.revision[:12]}: "
                 f"{result.status.upper()} ({summary or 'no targets'}) in "
                 f"{result.finished - result.started:.2f}s")
    return lines
