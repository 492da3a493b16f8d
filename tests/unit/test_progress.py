"""The live progress line of `runner run` at a terminal."""

from __future__ import annotations

import io

from rich.console import Console

from runner.cli.progress import Live


def test_the_live_line_shows_the_time_passing_while_no_target_ends() -> None:
    now = [100.0]
    out = io.StringIO()
    live = Live(3, Console(file=out, force_terminal=True, width=100), clock=lambda: now[0])
    live("web-1", None)  # a target starts
    first = live.bar.get_renderable()
    now[0] += 12.5
    console = Console(file=io.StringIO(), width=100)
    with console.capture() as before:
        console.print(first)
    with console.capture() as after:
        console.print(live.bar.get_renderable())
    assert "0/3 done, 0 failed, 1 running, 0.0s" in before.get()
    assert "0/3 done, 0 failed, 1 running, 12.5s" in after.get()
