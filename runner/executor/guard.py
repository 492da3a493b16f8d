"""Local commands die with the process that started them, even if it is killed with SIGKILL.

Each command runs in a session (process group) of its own, so nothing that kills its parent
reaches it. A Guard is one `sh` per runner process, in a session of its own too, that reads
from a pipe only that process holds: `+PGID` when a command starts, `-PGID` once it has been
reaped. When the process dies, however it dies, the kernel closes the pipe; the guard reads
end of file and kills every process group still listed, then exits. A command costs two
small writes (a few microseconds), no process; the guard itself costs one `sh` per process.

A command started in the instant between its spawn and its `+PGID` line outlives a death
in that instant; so do processes a command moved to a session of their own (setsid).
"""

from __future__ import annotations

import contextlib
import os

# dash and bash: `read` and `kill` are builtins; the list is "$@"
_SCRIPT = ('trap "" INT TERM HUP QUIT; while IFS= read -r g; do case $g in '
           '+*) set -- "$@" "${g#+}";; '
           '-*) r=${g#-}; n=; for p do [ "$p" = "$r" ] || n="$n $p"; done; set -- $n;; '
           'esac; done; for p do kill -KILL -"$p" 2>/dev/null; done')


class Guard:
    """The guard of this process's commands; started at the first, again after a fork or if
    it died."""

    def __init__(self) -> None:
        self._pid = 0      # the process it guards (a forked child needs its own)
        self._fd = -1      # the pipe's write end
        self._guard = 0    # the guard's pid

    def ready(self) -> None:
        """Starts the guard now if it is not running for this process: then `add` right
        after a spawn is one write, and the instant a command is unguarded stays short."""
        if self._pid != os.getpid():
            self._start()

    def add(self, pgid: int) -> None:
        self._send(f"+{pgid}\n".encode())

    def remove(self, pgid: int) -> None:
        self._send(f"-{pgid}\n".encode())

    def _send(self, line: bytes) -> None:
        for _ in range(2):
            if self._pid != os.getpid():
                self._start()
            try:
                os.write(self._fd, line)
                return
            except OSError:  # the guard died (someone killed it): a new one, once
                self._pid = 0
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(self._guard, os.WNOHANG)

    def _start(self) -> None:
        if self._fd >= 0:  # a forked child's copy of its parent's pipe: its parent's guard
            with contextlib.suppress(OSError):  # must still see end of file
                os.close(self._fd)
        read, write = os.pipe()  # both close-on-exec: commands never hold the write end
        try:
            self._guard = os.posix_spawn(
                "/bin/sh", ["/bin/sh", "-c", _SCRIPT], {},
                file_actions=[(os.POSIX_SPAWN_DUP2, read, 0),
                              (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                              (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)],
                setsid=True)
        finally:
            os.close(read)
        self._fd, self._pid = write, os.getpid()
