"""The `ssh` transport (asyncssh), with a connection pool shared by all targets of the process.

- Host keys are always verified, during key exchange (before any credential is sent),
  against the target's known_hosts, else ~/.ssh/known_hosts, exactly as OpenSSH's ssh decides
  (known_hosts.py). An unknown, a changed and a revoked key are refused, each with its message.
- Keys, known_hosts and the rest of the client options are loaded once per distinct target
  profile and reused, never once per connection.
- Connections are pooled per (host, port, user, known_hosts, key_file): a target leases one
  session slot for all its steps; a connection carries at most `ssh_max_sessions` leases
  (sshd's MaxSessions is 10); at most `max_connections_per_host` connections are open or
  opening to one host; idle connections close after `idle_timeout`, and beyond
  `max_idle_connections` idle ones the least recently used close at once.
- A step's env reaches its command over the command's stdin, never on a command line
  (posix.py).
- A cancelled command (timeout, cancel) is killed with its children: sshd starts each session
  in its own process group, so the command first reports that group's id ($$ of the login
  shell) on stderr (the line is removed from the output) and a cancel sends `kill -KILL -- -PGID`
  on a fresh session. (The SSH "signal" request is not enough: sshd refuses it for root logins.)
  Library errors become Unreachable / AuthFailed / HostKeyRejected.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncssh

from runner.config.model import Target
from runner.errors import AuthFailed, HostKeyRejected, TargetError, TransferFailed, Unreachable
from runner.executor import known_hosts
from runner.executor.base import Head, Tail, last_line, sh_get, sh_put
from runner.executor.hostkeys import HostKeyCheck, KnownHosts, read
from runner.executor.posix import env_stdin, sh_command, sh_script
from runner.settings import Settings

_CHUNK = 65536
_PID = b"runner-pid:"
_REPORT_PID = f"printf '{_PID.decode()}%s\\n' \"$$\" >&2; "
Key = tuple[str, int, str, str, str]


class _ConnectFailed(Exception):
    """Why one shared connection attempt failed; each waiting target re-raises it as its own."""

    def __init__(self, kind: type[TargetError], detail: str) -> None:
        self.kind, self.detail = kind, detail
        super().__init__(detail)


@dataclass(eq=False)
class _Conn:
    host: str
    ready: asyncio.Task[asyncssh.SSHClientConnection]
    users: int = 1
    last_used: float = field(default_factory=time.monotonic)
    broken: bool = False


class SshPool:
    """SSH connections of a worker, shared by the runs on the same target and login."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._options: dict[tuple[Any, ...], tuple[asyncssh.SSHClientConnectionOptions,
                                                   KnownHosts]] = {}
        self._conns: dict[Key, list[_Conn]] = {}
        self._per_host: dict[str, int] = {}
        self._changed = asyncio.Condition()

    def open(self, target: Target, secrets: Mapping[str, str],
             env: Mapping[str, str]) -> SshTransport:
        return SshTransport(self, target, secrets)

    def _profile(self, target: Target, secrets: Mapping[str, str]
                 ) -> tuple[asyncssh.SSHClientConnectionOptions, KnownHosts]:
        """Client options, built once per distinct profile: keys and known_hosts read once."""
        text = secrets.get("known_hosts")  # a repository file's text, at the run's revision
        known = os.path.expanduser(target.known_hosts or "~/.ssh/known_hosts")
        key = (known, text, target.key_file, target.user, secrets.get("password"),
               secrets.get("passphrase"))
        if key not in self._options:
            keys: Any = ()  # asyncssh's default: agent plus ~/.ssh/id_* (loaded here, once)
            if target.key_file:
                path = os.path.expanduser(target.key_file)
                try:
                    keys = [asyncssh.read_private_key(path, secrets.get("passphrase"))]
                except (OSError, asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as e:
                    raise _ConnectFailed(AuthFailed, f"cannot load key_file {path}: "
                                                     f"{getattr(e, 'strerror', None) or e}"
                                         ) from None
            # known_hosts=None: HostKeyCheck decides, as OpenSSH would (hostkeys.py)
            options = asyncssh.SSHClientConnectionOptions(
                known_hosts=None, client_keys=keys, username=target.user or _login(),
                password=secrets.get("password"), config=None,
                connect_timeout=self.settings.connect_timeout, keepalive_interval=30)
            self._options[key] = (options, read(known) if text is None else
                                  KnownHosts(known, known_hosts.parse(text)))
        return self._options[key]

    async def lease(self, target: Target, secrets: Mapping[str, str]) -> _Conn:
        host, port = target.host or "localhost", target.port or 22
        key: Key = (host, port, target.user or _login(), target.known_hosts or "",
                    target.key_file or "")
        async with self._changed:
            while True:
                self._reap()
                conn = next((c for c in self._conns.get(key, ())
                             if c.users < self.settings.ssh_max_sessions and not c.broken), None)
                if conn:
                    conn.users += 1
                    break
                if self._per_host.get(host, 0) < self.settings.max_connections_per_host:
                    options, known = self._profile(target, secrets)
                    conn = _Conn(host, asyncio.create_task(
                        _connect(host, port, options, known, _tried(target, secrets))))
                    self._conns.setdefault(key, []).append(conn)
                    self._per_host[host] = self._per_host.get(host, 0) + 1
                    break
                await self._changed.wait()
        try:
            await asyncio.shield(conn.ready)
        except BaseException:
            await self.release(conn, broken=conn.ready.done() and (
                conn.ready.cancelled() or conn.ready.exception() is not None))
            raise
        return conn

    async def release(self, conn: _Conn, broken: bool = False) -> None:
        async with self._changed:
            conn.users -= 1
            conn.last_used = time.monotonic()
            conn.broken = conn.broken or broken
            self._reap()
            self._changed.notify_all()

    def _reap(self) -> None:
        """Drops broken connections and closes those idle past idle_timeout, and the least
        recently used idle ones beyond max_idle_connections (file descriptors are finite)."""
        now = time.monotonic()
        idle = sorted((c for conns in self._conns.values() for c in conns if c.users == 0),
                      key=lambda c: c.last_used)
        surplus = set(idle[:max(0, len(idle) - self.settings.max_idle_connections)])
        for key, conns in list(self._conns.items()):
            for c in list(conns):
                old = c.users == 0 and now - c.last_used >= self.settings.idle_timeout
                if (c.broken and c.users == 0) or old or c in surplus or (
                        c.ready.done() and _closed(c)):
                    if c.users:
                        c.broken = True
                        continue
                    conns.remove(c)
                    self._per_host[c.host] -= 1
                    _close(c)
            if not conns:
                del self._conns[key]

    async def close(self) -> None:
        for conns in self._conns.values():
            for c in conns:
                _close(c)
                if c.ready.done() and not c.ready.cancelled() and not c.ready.exception():
                    await c.ready.result().wait_closed()
        self._conns.clear()
        self._per_host.clear()


def _closed(c: _Conn) -> bool:
    if c.ready.cancelled() or c.ready.exception() is not None:
        return True
    return bool(c.ready.result().is_closed())


def _close(c: _Conn) -> None:
    if not c.ready.done():
        c.ready.cancel()
    elif not c.ready.cancelled() and c.ready.exception() is None:
        c.ready.result().close()


def _login() -> str:
    import getpass

    return getpass.getuser()


def _tried(target: Target, secrets: Mapping[str, str]) -> str:
    keys = f"key_file {target.key_file}" if target.key_file else "the agent's and ~/.ssh keys"
    return keys + (" and the password" if "password" in secrets else "")


async def _connect(host: str, port: int, options: asyncssh.SSHClientConnectionOptions,
                   known: KnownHosts, tried: str) -> asyncssh.SSHClientConnection:
    where = f"{host}:{port}"
    check = HostKeyCheck(host, port, known)
    try:
        return await asyncssh.connect(host, port, options=options, client_factory=lambda: check,
                                      server_host_key_algs=check.algorithms())
    except asyncssh.HostKeyNotVerifiable:
        raise _ConnectFailed(HostKeyRejected, check.refusal()) from None
    except asyncssh.PermissionDenied:
        raise _ConnectFailed(AuthFailed, f"authentication to {where} as {options.username} "
                             f"failed: the server refused {tried}") from None
    except TimeoutError:
        raise _ConnectFailed(Unreachable, f"no answer from {where} within "
                             f"{options.connect_timeout:g}s") from None
    except OSError as e:
        raise _ConnectFailed(Unreachable, f"cannot connect to {where}: "
                             f"{e.strerror or e}") from None
    except asyncssh.Error as e:
        raise _ConnectFailed(Unreachable, f"connection to {where} failed: {e.reason}") from None


class SshTransport:
    """The `ssh` transport: a target's commands and files over an SSH connection."""

    def __init__(self, pool: SshPool, target: Target, secrets: Mapping[str, str]) -> None:
        self.pool, self.target, self.secrets = pool, target, secrets
        self.name = target.name
        self._conn: _Conn | None = None

    async def connect(self) -> None:
        try:
            self._conn = await self.pool.lease(self.target, self.secrets)
        except _ConnectFailed as e:
            raise e.kind(self.name, f"{self.name}: {e.detail}") from None

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await self.pool.release(conn)

    async def _exec(self, command: str, stdin: bytes | None, out: Tail | Head, err: Tail,
                    eof: bool = True) -> int:
        """`eof`: end stdin after `stdin`; a step's command does not get it (posix.py's
        watcher kills the command when its stdin ends: the connection dropped)."""
        assert self._conn is not None, "connect() first"
        conn = self._conn.ready.result()
        try:
            proc = await _open(conn, _REPORT_PID + command)
        except (asyncssh.Error, OSError) as e:
            self._conn.broken = True
            raise Unreachable(self.name, f"{self.name}: cannot open a session: "
                                         f"{getattr(e, 'reason', None) or e}") from None
        errors = _PidSink(err)
        try:
            if stdin:
                proc.stdin.write(stdin)
            if eof:
                proc.stdin.write_eof()
            await asyncio.gather(_pump(proc.stdout, out), _pump(proc.stderr, errors))
            errors.flush()
            done = await proc.wait()
            return done.returncode if done.returncode is not None else 255
        except asyncio.CancelledError:
            proc.close()
            if errors.pid.isdigit():
                with contextlib.suppress(asyncssh.Error, OSError, TimeoutError):
                    kill = await asyncio.wait_for(_open(conn, f"kill -KILL -- -{errors.pid}"), 5)
                    await asyncio.wait_for(kill.wait(), 5)
            raise
        except (asyncssh.Error, OSError) as e:
            self._conn.broken = True
            raise Unreachable(self.name, f"{self.name}: connection lost: "
                                         f"{getattr(e, 'reason', None) or e}") from None

    async def run(self, command: str, env: Mapping[str, str], out: Tail, err: Tail,
                  shell: str | None = None, stdin: bytes | None = None) -> int:
        return await self._exec(sh_command(command, shell), env_stdin(env, stdin), out, err,
                                eof=False)

    async def script(self, content: bytes, args: Sequence[str], env: Mapping[str, str],
                     out: Tail, err: Tail, shell: str | None = None) -> int:
        return await self._exec(sh_script(args, shell), env_stdin(env, content), out, err,
                                eof=False)

    async def put(self, data: bytes, dest: str, mode: int) -> None:
        err = Tail(4096)
        if await self._exec(sh_put(dest, mode), data, Tail(4096), err):
            raise TransferFailed(self.name, f"{self.name}: upload to {dest} failed: "
                                            f"{last_line(err)}")

    async def get(self, src: str, max_bytes: int, into: Tail) -> bool:
        out, err = Head(into, max_bytes), Tail(4096)  # streamed: memory stays bounded
        if await self._exec(sh_get(src, max_bytes), None, out, err):
            raise TransferFailed(self.name, f"{self.name}: download of {src} failed: "
                                            f"{last_line(err)}")
        return out.more


async def _open(conn: asyncssh.SSHClientConnection,
                command: str) -> asyncssh.SSHClientProcess[bytes]:
    """A session for `command`. sshd frees a session slot only once it has reaped the session's
    process, a moment after the channel closed, so a refused open is retried briefly."""
    delay = 0.01
    while True:
        try:
            return await conn.create_process(command, encoding=None)
        except asyncssh.ChannelOpenError:
            if delay > 1:
                raise
            await asyncio.sleep(delay)
            delay *= 2


class _PidSink:
    """Passes stderr through to a Tail, taking out the runner-pid line near its start."""

    def __init__(self, tail: Tail) -> None:
        self.tail, self.pid = tail, ""
        self.head: bytearray | None = bytearray()

    def write(self, data: bytes) -> None:
        if self.head is None:
            self.tail.write(data)
            return
        self.head += data
        at = self.head.find(_PID)
        end = self.head.find(b"\n", at)
        if at >= 0 and end >= 0:
            self.pid = self.head[at + len(_PID):end].decode("ascii", "replace")
            del self.head[at:end + 1]
        elif len(self.head) < 4096:
            return  # keep looking
        self.flush()

    def flush(self) -> None:
        if self.head is not None:
            self.tail.write(bytes(self.head))
            self.head = None


async def _pump(stream: asyncssh.SSHReader[bytes], sink: Tail | Head | _PidSink) -> None:
    while chunk := await stream.read(_CHUNK):
        sink.write(chunk)
