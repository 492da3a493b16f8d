"""The `local` transport: commands run as subprocesses of the worker, files written in place.

Each command gets its own process group, so a timeout or cancel kills it and its children.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
from collections.abc import Mapping, Sequence

from runner.config.model import Target
from runner.errors import TargetError, TransferFailed
from runner.executor.base import Tail

_CHUNK = 65536


def _argv(shell: str | None, command: str) -> list[str]:
    if shell == "powershell":
        return ["pwsh", "-NoProfile", "-NonInteractive", "-Command", command]
    if shell == "cmd":
        return ["cmd", "/c", command]
    return ["/bin/sh" if shell in (None, "sh") else shell, "-c", command]


async def pump(stream: asyncio.StreamReader | None, sink: Tail) -> None:
    if stream is None:
        return
    while chunk := await stream.read(_CHUNK):
        sink.write(chunk)


class LocalTransport:
    def __init__(self, name: str) -> None:
        self.name = name

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def run(self, command: str, env: Mapping[str, str], out: Tail, err: Tail,
                  shell: str | None = None, stdin: bytes | None = None) -> int:
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
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE if stdin is not None else
                asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env={**os.environ, **env},
                start_new_session=True)
        except OSError as e:
            raise TargetError(self.name, f"{self.name}: cannot start {argv[0]}: "
                                         f"{e.strerror}") from None
        try:
            if stdin is not None and proc.stdin is not None:
                proc.stdin.write(stdin)
                with contextlib.suppress(ConnectionError):
                    await proc.stdin.drain()
                proc.stdin.close()
            await asyncio.gather(pump(proc.stdout, out), pump(proc.stderr, err))
            return await proc.wait()
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            raise

    async def put(self, data: bytes, dest: str, mode: int) -> None:
        try:
            await asyncio.to_thread(_write_atomic, dest, data, mode)
        except OSError as e:
            raise TransferFailed(self.name, f"{self.name}: upload to {dest} failed: "
                                            f"{e.strerror or e}") from None

    async def get(self, src: str, max_bytes: int) -> tuple[bytes, bool]:
        try:
            data = await asyncio.to_thread(_read_head, src, max_bytes + 1)
        except OSError as e:
            raise TransferFailed(self.name, f"{self.name}: download of {src} failed: "
                                            f"{e.strerror or e}") from None
        return data[:max_bytes], len(data) > max_bytes


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


def _read_head(src: str, size: int) -> bytes:
    with open(src, "rb") as f:
        return f.read(size)


class LocalConnector:
    def open(self, target: Target, secrets: Mapping[str, str],
             env: Mapping[str, str]) -> LocalTransport:
        return LocalTransport(target.name)

    async def close(self) -> None:
        return None
