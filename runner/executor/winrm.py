"""The `winrm` transport (pywinrm), its blocking calls run in a thread pool of its own.

Each attempt on a target opens one WinRM shell (with the job's env as the shell's environment)
and runs every step in it. Commands run as PowerShell (default) or cmd. Scripts and uploads
stream their bytes through the command's stdin to a small PowerShell reader, base64 in lines,
and land atomically (temp file, then Move-Item). Downloads come back base64 on stdout.
A timeout or cancel sends WS-Management's terminate signal to the command.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import requests
from winrm.exceptions import (
    InvalidCredentialsError,
    WinRMError,
    WinRMOperationTimeoutError,
    WinRMTransportError,
)
from winrm.protocol import Protocol

from runner.config.model import Target
from runner.errors import AuthFailed, TargetError, TransferFailed, Unreachable
from runner.executor.base import Tail, last_line
from runner.settings import Settings

T = TypeVar("T")
_OPERATION_TIMEOUT = 5  # seconds a Receive may wait for output: bounds cancel latency
_LINE = 48 * 1024       # raw bytes per base64 line sent to a reader


def ps_quote(value: str) -> str:
    """`value` as a single-quoted PowerShell string."""
    return "'" + value.replace("'", "''") + "'"


def encoded(script: str) -> str:
    """A PowerShell command line running `script` (UTF-16LE base64, no quoting trouble)."""
    b64 = base64.b64encode(script.encode("utf-16-le")).decode()
    return f"powershell -NoProfile -NonInteractive -EncodedCommand {b64}"


def _reader(dest: str) -> str:
    """PowerShell that writes base64 lines from stdin to `dest`, atomically."""
    return (f"$ErrorActionPreference='Stop'; $d={ps_quote(dest)}; $t=$d+'.runner-tmp'; "
            "$f=[IO.File]::Create($t); "
            "while ($null -ne ($l=[Console]::In.ReadLine())) "
            "{ $b=[Convert]::FromBase64String($l); $f.Write($b,0,$b.Length) }; "
            "$f.Close(); Move-Item -Force -LiteralPath $t -Destination $d")


def _head(src: str, size: int) -> str:
    """PowerShell printing the first `size` bytes of `src` as base64."""
    return (f"$p={ps_quote(src)}; if (-not (Test-Path -LiteralPath $p -PathType Leaf)) "
            "{ [Console]::Error.WriteLine(\"no such file: $p\"); exit 2 }; "
            f"$f=[IO.File]::OpenRead($p); $b=New-Object byte[] {size}; $n=0; "
            "while ($n -lt $b.Length -and ($r=$f.Read($b,$n,$b.Length-$n)) -gt 0) { $n+=$r }; "
            "$f.Close(); [Convert]::ToBase64String($b,0,$n)")


class WinrmConnector:
    """Opens WinRM transports, on threads of its own (pywinrm blocks)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.threads = ThreadPoolExecutor(max_workers=64, thread_name_prefix="winrm")

    def open(self, target: Target, secrets: Mapping[str, str],
             env: Mapping[str, str]) -> WinrmTransport:
        return WinrmTransport(self, target, secrets, env)

    async def close(self) -> None:
        self.threads.shutdown(wait=False, cancel_futures=True)


class WinrmTransport:
    """The `winrm` transport: a target's commands and files over WinRM."""

    def __init__(self, connector: WinrmConnector, target: Target, secrets: Mapping[str, str],
                 env: Mapping[str, str]) -> None:
        self.connector, self.target, self.name = connector, target, target.name
        scheme = target.scheme or "https"
        port = target.port or (5985 if scheme == "http" else 5986)
        self.where = f"{scheme}://{target.host}:{port}/wsman"
        timeout = connector.settings.connect_timeout
        auth: Any = target.auth or "ntlm"
        self.protocol = Protocol(
            self.where, transport=auth, username=target.user,
            password=secrets.get("password", ""), server_cert_validation="validate",
            operation_timeout_sec=_OPERATION_TIMEOUT,
            read_timeout_sec=_OPERATION_TIMEOUT + max(1, int(timeout)), proxy=None,
            # the CA bundle requests would use, passed explicitly (pywinrm warns otherwise)
            ca_trust_path=os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get(
                "CURL_CA_BUNDLE") or "legacy_requests")
        self.shell = ""
        self.env = env

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.connector.threads,
                                              functools.partial(fn, *args))
        except WinRMOperationTimeoutError:
            raise  # a Receive that saw no output yet: the caller polls again
        except InvalidCredentialsError:
            raise AuthFailed(self.name, f"{self.name}: authentication to {self.where} as "
                                        f"{self.target.user} failed: the server refused the "
                                        "credentials") from None
        except requests.exceptions.Timeout:
            raise Unreachable(self.name, f"{self.name}: no answer from {self.where}") from None
        except requests.exceptions.ConnectionError as e:
            raise Unreachable(self.name, f"{self.name}: cannot connect to {self.where}: "
                                         f"{_root_cause(e)}") from None
        except (WinRMTransportError, WinRMError, requests.RequestException) as e:
            raise Unreachable(self.name, f"{self.name}: WinRM request to {self.where} failed: "
                                         f"{e}") from None

    async def connect(self) -> None:
        """Opens the WinRM shell every step runs in, with the job's env as its environment."""
        self.shell = await self._call(self.protocol.open_shell, "stdin", "stdout stderr", None,
                                      dict(self.env) or None)

    async def close(self) -> None:
        if self.shell:
            shell, self.shell = self.shell, ""
            with contextlib.suppress(TargetError):
                await self._call(self.protocol.close_shell, shell, False)
        self.protocol.transport.close_session()

    async def _exec(self, command: str, out: Tail, err: Tail, stdin: bytes | None = None) -> int:
        shell = self.shell
        cid = await self._call(self.protocol.run_command, shell, command)
        try:
            if stdin is not None:
                await self._call(self.protocol.send_command_input, shell, cid, stdin, True)
            while True:
                try:
                    o, e, rc, done = await self._call(self.protocol.get_command_output_raw,
                                                      shell, cid)
                except WinRMOperationTimeoutError:
                    continue
                out.write(o)
                err.write(e)
                if done:
                    break
        except asyncio.CancelledError:
            with contextlib.suppress(TargetError, TimeoutError):
                await asyncio.wait_for(self._call(self.protocol.cleanup_command, shell, cid), 5)
            raise
        with contextlib.suppress(TargetError):
            await self._call(self.protocol.cleanup_command, shell, cid)
        return rc

    async def run(self, command: str, env: Mapping[str, str], out: Tail, err: Tail,
                  shell: str | None = None, stdin: bytes | None = None) -> int:
        line = command if (shell or self.target.shell) == "cmd" else encoded(command)
        return await self._exec(line, out, err, stdin)

    async def script(self, content: bytes, args: Sequence[str], env: Mapping[str, str],
                     out: Tail, err: Tail, shell: str | None = None) -> int:
        cmd = (shell or self.target.shell) == "cmd"
        path = f"$env:TEMP\\runner-{uuid.uuid4().hex}.{'bat' if cmd else 'ps1'}"
        expanded = f"{path.replace('$env:TEMP', '%TEMP%')}"
        await self.put(content, path, 0o700)
        quoted = " ".join(f'"{a}"' for a in args)
        line = (f"cmd /c {expanded} {quoted} & del {expanded}" if cmd else encoded(
            f"try {{ & {path} {' '.join(ps_quote(a) for a in args)}; exit $LASTEXITCODE }} "
            f"finally {{ Remove-Item -Force {path} }}"))
        return await self._exec(line, out, err)

    async def put(self, data: bytes, dest: str, mode: int) -> None:
        lines = b"".join(base64.b64encode(data[i:i + _LINE]) + b"\r\n"
                         for i in range(0, len(data), _LINE))
        err = Tail(4096)
        if await self._exec(encoded(_reader(dest)), Tail(4096), err, lines):
            raise TransferFailed(self.name, f"{self.name}: upload to {dest} failed: "
                                            f"{last_line(err)}")

    async def get(self, src: str, max_bytes: int, into: Tail) -> bool:
        # WS-Management returns a command's output whole: base64, then the bytes (2.4 times
        # max_bytes at most, as pywinrm holds it anyway)
        out, err = Tail(2 * max_bytes + 1024), Tail(4096)
        if await self._exec(encoded(_head(src, max_bytes + 1)), out, err):
            raise TransferFailed(self.name, f"{self.name}: download of {src} failed: "
                                            f"{last_line(err)}")
        data = base64.b64decode(bytes(out.buf).strip() or b"")
        out.buf.clear()
        into.write(data[:max_bytes] if len(data) > max_bytes else data)
        return len(data) > max_bytes


def _root_cause(e: BaseException) -> str:
    while e.__context__ is not None or e.__cause__ is not None:
        e = e.__cause__ or e.__context__  # type: ignore[assignment]
    return str(getattr(e, "strerror", None) or e)
