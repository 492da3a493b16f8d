"""Waiting for files to appear in folders without looking again and again: Linux inotify.

A Folder watch is opened once; wait(timeout) returns as soon as a file was written or moved
into a folder since the last wait (events that came meanwhile are not lost), else after
timeout; or, readable in an event loop (its fd), arrived() says which files.
libc's three inotify calls through ctypes: no dependency and no thread (watchfiles' own
loop wakes every step). Where inotify is missing (not Linux, or the
user's inotify limits are reached) open_folder returns None and the caller polls.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import struct
from pathlib import Path

IN_CLOSE_WRITE = 0x008
IN_MOVED_TO = 0x080
IN_CLOEXEC = 0o2000000
IN_NONBLOCK = 0o4000


EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name)


class Folder:
    """An inotify watch of folders for files written or moved into them."""

    def __init__(self, fd: int, folders: dict[int, Path]) -> None:
        self.fd, self.folders = fd, folders

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

    def arrived(self) -> set[Path]:
        """The files written or moved in since the last call (none when there were none)."""
        out, data = set(), b""
        try:
            while chunk := os.read(self.fd, 65536):
                data += chunk
        except BlockingIOError:
            pass
        at = 0
        while at < len(data):
            wd, _mask, _cookie, size = EVENT.unpack_from(data, at)
            name = data[at + EVENT.size:at + EVENT.size + size].rstrip(b"\0")
            at += EVENT.size + size
            if name and wd in self.folders:
                out.add(self.folders[wd] / os.fsdecode(name))
        return out

    def close(self) -> None:
        os.close(self.fd)


def open_folder(*paths: Path | str) -> Folder | None:
    """A watch of the folders `paths`, or None where inotify cannot be had (then poll)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
    except (OSError, AttributeError):  # no libc found, or no inotify in it
        return None
    if fd < 0:
        return None
    folders = {}
    for path in paths:
        wd = libc.inotify_add_watch(fd, os.fsencode(path), IN_MOVED_TO | IN_CLOSE_WRITE)
        if wd < 0:
            os.close(fd)
            return None
        folders[wd] = Path(path)
    return Folder(fd, folders)
