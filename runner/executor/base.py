"""What every transport implements, what a run returns, and the helpers they share.

A transport reaches one target: connect, run a command (env, stdin, output into capped sinks),
run a script, put a file, get a file, close. Timeouts and cancellation arrive as asyncio
cancellation; a transport kills its command when cancelled. Library errors become TargetError
subclasses (errors.py) inside the transport, so the engine never sees asyncssh or winrm.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

MASK = "********"


@dataclass(frozen=True)
class FileBlob:
    """A repository file a job references: its bytes and its mode (0o644, 0o755)."""

    data: bytes
    mode: int = 0o644


class Tail:
    """Keeps the last `cap` bytes written; counts what it dropped."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.buf = bytearray()
        self.dropped = 0

    def write(self, data: bytes) -> None:
        self.buf += data
        extra = len(self.buf) - self.cap
        if extra > 0:
            del self.buf[:extra]
            self.dropped += extra


class Masker:
    """Replaces every resolved secret value by MASK, in bytes and in text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # longest first, so a secret containing another is masked whole
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._bytes = [s.encode() for s in self.secrets]

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def text(self, value: str) -> str:
        for s in self.secrets:
            value = value.replace(s, MASK)
        return value

    def data(self, value: bytes) -> bytes:
        for s in self._bytes:
            value = value.replace(s, MASK.encode())
        return value

    def output(self, tail: Tail) -> str:
        """A sink's content as text, masked; a cut-off start gets a marker."""
        data = bytes(tail.buf)
        for s in self._bytes:
            data = data.replace(s, MASK.encode())
            if tail.dropped:  # the cut may have left a secret's end at the start
                for k in range(len(s) - 1, 0, -1):
                    if data.startswith(s[-k:]):
                        data = MASK.encode() + data[k:]
                        break
        text = data.decode("utf-8", "replace")
        return f"[... {tail.dropped} bytes cut ...]\n{text}" if tail.dropped else text


class Transport(Protocol):
    """One target's connection. All methods raise TargetError subclasses only."""

    async def connect(self) -> None: ...

    async def run(self, command: str, env: Mapping[str, str], out: Tail, err: Tail,
                  shell: str | None = None, stdin: bytes | None = None) -> int: ...

    async def script(self, content: bytes, args: Sequence[str], env: Mapping[str, str],
                     out: Tail, err: Tail, shell: str | None = None) -> int: ...

    async def put(self, data: bytes, dest: str, mode: int) -> None: ...

    async def get(self, src: str, max_bytes: int) -> tuple[bytes, bool]: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class StepResult:
    name: str
    kind: str
    status: str  # success | failed | timeout | cancelled
    rc: int | None
    duration: float
    error: str | None = None


@dataclass(frozen=True)
class Download:
    src: str
    data: bytes
    truncated: bool


@dataclass(frozen=True)
class TargetResult:
    status: str  # success | failed | timeout | cancelled | skipped
    rc: int | None = None
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0
    error: str | None = None
    attempts: int = 0
    steps: tuple[StepResult, ...] = ()
    downloads: tuple[Download, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "rc": self.rc, "stdout": self.stdout,
                "stderr": self.stderr, "duration": round(self.duration, 3), "error": self.error,
                "attempts": self.attempts,
                "steps": [{"name": s.name, "kind": s.kind, "status": s.status, "rc": s.rc,
                           "duration": round(s.duration, 3), "error": s.error}
                          for s in self.steps],
                "downloads": [{"src": d.src, "bytes": len(d.data), "truncated": d.truncated}
                              for d in self.downloads]}


@dataclass(frozen=True)
class RunResult:
    run_id: str
    job: str
    revision: str
    status: str  # success | failed | cancelled
    started: float
    finished: float
    targets: dict[str, TargetResult] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "job": self.job, "revision": self.revision,
                "status": self.status, "started": self.started, "finished": self.finished,
                "duration": round(self.finished - self.started, 3),
                "targets": {n: t.as_dict() for n, t in self.targets.items()}}


def last_line(tail: Tail) -> str:
    """The last line a command wrote (for a one-sentence error), or 'no message'."""
    lines = bytes(tail.buf).decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else "no message"


def run_status(statuses: Iterable[str]) -> str:
    seen = set(statuses)
    if "cancelled" in seen:
        return "cancelled"
    return "success" if seen <= {"success"} else "failed"


# POSIX shell snippets, for transports that reach a Unix shell (ssh).

def sh_command(command: str, env: Mapping[str, str], shell: str | None) -> str:
    """`command` for the remote login shell, with `env` exported and the chosen shell."""
    exports = "".join(f"export {k}={shlex.quote(v)}; " for k, v in env.items())
    body = command if shell in (None, "sh") else f"{shell} -c {shlex.quote(command)}"
    return exports + body


def sh_script(args: Sequence[str], env: Mapping[str, str], shell: str | None) -> str:
    """Reads a script from stdin into a private temp file, runs it with `args`, removes it."""
    run = '"$t"' if shell is None else f'{shell} "$t"'
    quoted = " ".join(shlex.quote(a) for a in args)
    return sh_command(f't=$(mktemp) && cat >"$t" && chmod 700 "$t" && '
                      f'{{ {run} {quoted}; rc=$?; rm -f "$t"; exit $rc; }}', env, None)


def sh_put(dest: str, mode: int) -> str:
    """Writes stdin to `dest` atomically (temp file beside it, then rename) with `mode`."""
    d = shlex.quote(dest)
    return (f'd={d}; mkdir -p "$(dirname "$d")" && t=$(mktemp "$d.XXXXXX") && '
            f'cat >"$t" && chmod {mode:o} "$t" && mv -f "$t" "$d" || {{ rm -f "$t"; exit 1; }}')


def sh_get(src: str, max_bytes: int) -> str:
    """Prints at most max_bytes + 1 bytes of `src` (one more tells it was cut)."""
    s = shlex.quote(src)
    return (f'f={s}; if [ ! -f "$f" ]; then echo "no such file: $f" >&2; exit 2; fi; '
            f'head -c {max_bytes + 1} "$f"')
