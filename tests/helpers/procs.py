"""Polling with a deadline, and processes found by their pid: a known process's tree read from
/proc, never a system-wide search of command lines."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def poll(check: Callable[[], Any], deadline: float = 30.0, what: str = "condition") -> Any:
    """`check()`'s first true value, polled until `deadline` seconds; AssertionError after."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {deadline}s")


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (state first, then the parent)."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def alive(pid: int) -> bool:
    """`pid` runs (not a zombie)."""
    try:
        return _stat(pid)[0] != "Z"
    except OSError:
        return False


def ancestors(pid: int) -> list[int]:
    """The parent of `pid`, its parent, ... up to init (not included)."""
    out = []
    while pid > 1:
        try:
            pid = int(_stat(pid)[1])
        except OSError:
            break
        out.append(pid)
    return out


def children(pid: int) -> set[int]:
    """The processes whose parent is `pid`."""
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(_stat(int(entry))[1]) == pid:
                    out.add(int(entry))
            except (OSError, IndexError):
                continue
    return out


def descendants(pid: int) -> set[int]:
    """Every living process below `pid` (children, their children, ...)."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = _stat(int(entry))
            except (OSError, IndexError):
                continue
            if fields[0] != "Z":
                parent[int(entry)] = int(fields[1])
    out, todo = set(), [pid]
    while todo:
        below = [p for p, up in parent.items() if up == todo[-1]]
        todo.pop()
        out.update(below)
        todo += below
    return out


def cmdline(pid: int) -> str:
    """The command line of `pid`, its arguments joined by spaces ('' once it has gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def matching(root: int, text: str) -> list[int]:
    """The processes below the known process `root` whose command line holds `text`."""
    return sorted(p for p in descendants(root) if text in cmdline(p))


def running(root: int, command: str) -> list[int]:
    """The processes below the known process `root` whose command line is `command` (a job's
    command started by a worker or sshd: its pid is not ours to know)."""
    return sorted(p for p in descendants(root) if cmdline(p).strip() == command)


def gone(pids: set[int] | list[int], deadline: float = 5.0) -> bool:
    """True once none of `pids` runs (polled with a deadline)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


@contextmanager
def watching(root: int, text: str) -> Iterator[set[int]]:
    """The processes below `root` whose command line holds `text` at any moment of the block
    (sampled every 20 ms by a thread): a command started and killed inside a call is seen too."""
    seen: set[int] = set()
    stop = threading.Event()

    def look() -> None:
        while not stop.is_set():
            seen.update(matching(root, text))
            stop.wait(0.02)

    thread = threading.Thread(target=look, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join()
