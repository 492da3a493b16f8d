"""Waiting for a file to appear in a folder without looking again and again: Linux inotify.

A Folder watch is opened once; wait(timeout) returns as soon as a file was created or moved
into the folder since the last wait (events that came meanwhile are not lost), else after
timeout. libc's three inotify calls through ctypes: no dependency and no thread
(watchfiles' own loop wakes every step). Where inotify is missing (not Linux, or the
user's inotify limits are reached) open_folder returns None and the caller polls.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
from pathlib import Path

IN_CLOSE_WRITE = 0x008
IN_MOVED_TO = 0x080
IN_CLOEXEC = 0o2000000
IN_NONBLOCK = 0o4000


class Folder:
    """An inotify watch of one folder for files written or moved into it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def wait(self, timeout: float) -> bool:
        """Whether a file arrived (since the last wait) within `timeout` seconds."""
        ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if not ready:
            return False
        try:
            while os.read(self.fd, 65536):  # drain: one wake-up for a burst of files
                pass
        except BlockingIOError:
            pass
        return True

    def close(self) -> None:
        os.close(self.fd)


def open_folder(path: Path | str) -> Folder | None:
    """A watch of `path`, or None where inotify cannot be had (then poll)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
    except (OSError, AttributeError):  # no libc found, or no inotify in it
        return None
    if fd < 0:
        return None
    if libc.inotify_add_watch(fd, os.fsencode(path), IN_MOVED_TO | IN_CLOSE_WRITE) < 0:
        os.close(fd)
        return None
    return Folder(fd)
