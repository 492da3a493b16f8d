"""The `local` transport: commands run as subprocesses of the worker, files written in place.

Each command gets its own process group, so a timeout or cancel kills it and its children,
and a Guard (guard.py) kills it when the process that started it dies, even by SIGKILL.
A command ends when its process exits. It is started with posix_spawn, and its pipes and its
exit (a pidfd) are watched by the event loop directly, not through asyncio's subprocess
streams or subprocess.Popen: their per-command work is spent in the worker for every command
of every run (bench/celery_runs.py measures it).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import select
import signal
import stat
import tempfile
from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from runner.config.model import Target
from runner.errors import TargetError, TransferFailed
from runner.executor.base import Tail
from runner.executor.guard import Guard
from runner.executor.secrets import runner_own
from runner.settings import Settings

_CHUNK = 65536
_QUICK_MS = 2  # see LocalTransport._exec


class _NotStarted(TargetError):
    """The program could not be started (not found, not executable)."""


# A command made only of plain words, whose first word is a program (not a shell builtin or
# keyword, not an assignment), is what sh would exec as it is: it is exec'd without the shell
# (a process fewer per command). `true` and `false` behave as their programs do.
_PLAIN = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")
_SHELL_WORDS = frozenset((
    ".", ":", "[", "alias", "bg", "break", "cd", "chdir", "command", "continue", "echo",
    "eval", "exec", "exit", "export", "fc", "fg", "getopts", "hash", "jobs", "kill", "local",
    "printf", "pwd", "read", "readonly", "return", "set", "shift", "test", "times", "trap",
    "type", "ulimit", "umask", "unalias", "unset", "wait", "!", "{", "}", "case", "do", "done",
    "elif", "else", "esac", "fi", "for", "if", "in", "then", "until", "while"))


def _plain(command: str) -> list[str] | None:
    words = command.split(" ")
    words = [w for w in words if w]
    if not words or words[0] in _SHELL_WORDS or "=" in words[0]:
        return None
    return words if all(_PLAIN.fullmatch(w) for w in words) else None


def _argv(shell: str | None, command: str) -> list[str]:
    if shell == "powershell":
        return ["pwsh", "-NoProfile", "-NonInteractive", "-Command", command]
    if shell == "cmd":
        return ["cmd", "/c", command]
    return ["/bin/sh" if shell in (None, "sh") else shell, "-c", command]


def _read(fd: int, sink: Tail) -> bool:
    """Copies what is waiting on the non-blocking `fd` into `sink`; False once it is empty."""
    try:
        chunk = os.read(fd, _CHUNK)
    except BlockingIOError:
        return False
    sink.write(chunk)
    return bool(chunk)


def _spawn(name: str, argv: list[str], base: dict[bytes, bytes], env: Mapping[str, str],
           stdin: bool) -> tuple[int, list[tuple[int, int]], int | None]:
    """Starts `argv` in a new session with stdout and stderr on pipes and stdin on /dev/null
    or a pipe: (pid, [(read, write) ends of stdout, stderr], stdin's write end or None).
    posix_spawn is one vfork-like clone, without subprocess.Popen's setup in Python.
    Only the pipes' child ends are inherited: Python's own descriptors are
    close-on-exec, and LocalConnector marks those the process inherited likewise."""
    pipes = [os.pipe(), os.pipe()]
    feed = os.pipe() if stdin else None
    actions: list[tuple[Any, ...]] = [(os.POSIX_SPAWN_DUP2, pipes[0][1], 1),
                                      (os.POSIX_SPAWN_DUP2, pipes[1][1], 2)]
    actions.append((os.POSIX_SPAWN_DUP2, feed[0], 0) if feed else
                   (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0))
    try:
        environ = {**base, **{os.fsencode(k): os.fsencode(v) for k, v in env.items()}}
        pid = os.posix_spawnp(argv[0], argv, environ, file_actions=actions, setsid=True)
    except OSError as e:
        for fd in (*pipes[0], *pipes[1], *(feed or ())):
            os.close(fd)
        raise _NotStarted(name, f"{name}: cannot start {argv[0]}: {e.strerror}") from None
    if feed:
        os.close(feed[0])
    return pid, pipes, feed[1] if feed else None


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when `pid` exits (Linux >= 5.3), else None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _gone(pidfd: int, ms: int) -> bool:
    """True once the process of `pidfd` has exited, waiting at most `ms` milliseconds."""
    ready = select.poll()
    ready.register(pidfd, select.POLLIN)
    return bool(ready.poll(ms))


async def _exited(loop: asyncio.AbstractEventLoop, pid: int, pidfd: int | None) -> int:
    """`pid`'s exit status as subprocess gives it (-N: killed by signal N)."""
    if pidfd is None:
        _, status = await asyncio.to_thread(os.waitpid, pid, 0)
        return os.waitstatus_to_exitcode(status)
    if not _gone(pidfd, 0):
        gone: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not gone.done():
                gone.set_result(None)

        loop.add_reader(pidfd, readable)
        try:
            await gone
        finally:
            loop.remove_reader(pidfd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _no_inherited() -> None:
    """Marks the descriptors this process inherited (beyond 0-2) close-on-exec, so commands
    started with posix_spawn do not get them (subprocess closes them in the child)."""
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                if int(name) > 2 and os.get_inheritable(int(name)):
                    os.set_inheritable(int(name), False)


class LocalTransport:
    """The `local` transport: a target's commands run as subprocesses of this process."""

    def __init__(self, name: str, environ: dict[bytes, bytes] | None = None,
                 guard: Guard | None = None) -> None:
        """`environ`: what commands inherit, as bytes (so posix_spawn need not read os.environ
        through the Mapping ABC for each command); by default the clean part of this process's.
        `guard`: the process's (LocalConnector's), else one of its own."""
        self.name = name
        self.environ = clean_environ(Settings(), os.environb) if environ is None else environ
        self.guard = guard or Guard()

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def run(self, command: str, env: Mapping[str, str], out: Tail, err: Tail,
                  shell: str | None = None, stdin: bytes | None = None) -> int:
        direct = _plain(command) if shell in (None, "sh") else None
        if direct:
            try:
                return await self._exec(direct, env, out, err, stdin)
            except _NotStarted:
                pass  # not a program after all: the shell says so, with its exit status
        return await self._exec(_argv(shell, command), env, out, err, stdin)

    async def script(self, content: bytes, args: Sequence[str], env: Mapping[str, str],
                     out: Tail, err: Tail, shell: str | None = None) -> int:
        fd, path = tempfile.mkstemp(prefix="runner-script-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(content)
            os.chmod(path, 0o700)
            direct = content.startswith(b"#!") and shell is None
            interpreter = [] if direct else [shell or "/bin/sh"]
            return await self._exec([*interpreter, path, *args], env, out, err, None)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)

    async def _exec(self, argv: list[str], env: Mapping[str, str], out: Tail, err: Tail,
                    stdin: bytes | None) -> int:
        """Runs `argv` until its process exits. The worker keeps the pipes' write ends open
        too, so they never reach end of file: the process's exit alone wakes the worker,
        then what it wrote is read. Output that processes it left behind write later is not
        captured. A command that exits within _QUICK_MS is waited for in one poll(), with no
        turn of the event loop (the common trivial command; it holds the loop that long)."""
        loop = asyncio.get_running_loop()
        self.guard.ready()  # not between the spawn and its +PGID line
        pid, pipes, feed = _spawn(self.name, argv, self.environ, env, stdin is not None)
        sinks = ((pipes[0][0], out), (pipes[1][0], err))
        pidfd = _pidfd(pid)
        watched = False
        rc: int | None = None
        try:
            self.guard.add(pid)
            for fd, _ in sinks:
                os.set_blocking(fd, False)
            if feed is None and pidfd is not None and _gone(pidfd, _QUICK_MS):
                rc = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
            else:
                watched = True
                for fd, sink in sinks:
                    loop.add_reader(fd, _read, fd, sink)
                if feed is not None:
                    await asyncio.to_thread(_feed, feed, stdin or b"")
                rc = await _exited(loop, pid, pidfd)
            for fd, sink in sinks:
                while _read(fd, sink):
                    pass
            return rc
        except BaseException:  # cancelled, timed out, or a signal's exception (time limit)
            if rc is None:  # not reaped yet: its process group is still its own
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
            raise
        finally:
            self.guard.remove(pid)  # reaped: its id may be another process's next
            if watched:
                for fd, _ in sinks:
                    loop.remove_reader(fd)
            for fd in (*pipes[0], *pipes[1], *([pidfd] if pidfd is not None else [])):
                os.close(fd)

    async def put(self, data: bytes, dest: str, mode: int) -> None:
        try:
            await asyncio.to_thread(_write_atomic, dest, data, mode)
        except OSError as e:
            raise TransferFailed(self.name, f"{self.name}: upload to {dest} failed: "
                                            f"{e.strerror or e}") from None

    async def get(self, src: str, max_bytes: int, into: Tail) -> bool:
        try:
            return await asyncio.to_thread(_read_head, src, max_bytes, into)
        except OSError as e:
            raise TransferFailed(self.name, f"{self.name}: download of {src} failed: "
                                            f"{e.strerror or e}") from None


def _write_atomic(dest: str, data: bytes, mode: int) -> None:
    parent = os.path.dirname(os.path.abspath(dest))
    os.makedirs(parent, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{os.path.basename(dest)}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            os.fchmod(f.fileno(), mode)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _feed(fd: int, data: bytes) -> None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
    except BrokenPipeError:
        pass  # the command did not read it all
    finally:
        os.close(fd)


def _read_head(src: str, size: int, into: Tail) -> bool:
    """At most `size` bytes of the regular file `src` into `into`, a chunk at a time (memory
    stays bounded), and whether it has more. Opened without
    blocking and refused unless regular: a FIFO would wait for a writer for ever (past the
    timeout: a thread cannot be cancelled), and a device like /dev/zero never ends."""
    fd = os.open(src, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # before open(): it refuses a directory
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file (downloads read regular files only)")
    with open(fd, "rb", buffering=0) as f:
        while size > 0 and (chunk := f.read(min(size, _CHUNK))):
            into.write(chunk)
            size -= len(chunk)
        return f.read(1) != b""


# What cron and systemd give a job; RUNNER_LOCAL_ENV adds names or globs.
CLEAN_ENV = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_*", "TZ")


def clean_environ(settings: Settings, environ: Mapping[bytes, bytes]) -> dict[bytes, bytes]:
    """The variables of `environ` a local command gets: CLEAN_ENV, and those RUNNER_LOCAL_ENV
    names that are not runner's own (REDIS_URL, RUNNER_*, the secret scope, what the API
    settings name)."""
    def passed(name: str) -> bool:
        return any(fnmatchcase(name, glob) for glob in CLEAN_ENV) or (
            any(fnmatchcase(name, glob) for glob in settings.local_env)
            and not runner_own(name, settings))

    return {k: v for k, v in environ.items() if passed(os.fsdecode(k))}


class LocalConnector:
    """Commands get a clean environment (clean_environ of the process's environment when
    this was made: a worker, at its first local run), plus their job's `env`."""

    def __init__(self, settings: Settings | None = None) -> None:
        _no_inherited()
        self.environ = clean_environ(settings or Settings(), os.environb)
        self.guard = Guard()

    def open(self, target: Target, secrets: Mapping[str, str],
             env: Mapping[str, str]) -> LocalTransport:
        return LocalTransport(target.name, self.environ, self.guard)

    async def close(self) -> None:
        return None
