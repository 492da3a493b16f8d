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
from typing import Any, BinaryIO, Protocol

MASK = "********"
_RUN = 65536  # bytes of overlapping secrets a stream holds back at most, to mask them as one


@dataclass(frozen=True)
class FileBlob:
    """A repository file a job references: its bytes and its mode (0o644, 0o755)."""

    data: bytes
    mode: int = 0o644


class Tail:
    """Keeps the last `cap` bytes written; counts what it dropped. With a Masker, secrets are
    masked as the bytes arrive, before anything is cut: an end that may begin a secret waits
    for the next write (or for `text`)."""

    def __init__(self, cap: int, masker: Masker | None = None) -> None:
        self.cap = cap
        self.buf = bytearray()
        self.dropped = 0
        self.masker = masker or None
        self._rest = b""  # written, not masked yet
        self._carry = 0  # how much of _rest's start is known to be a secret
        self.seen = 0  # bytes written

    def write(self, data: bytes) -> None:
        self.seen += len(data)
        if self.masker is not None:
            data, self._rest, self._carry = self.masker.stream(self._rest + data, self._carry)
        self._keep(data)

    def _keep(self, data: bytes) -> None:
        self.buf += data
        extra = len(self.buf) - self.cap
        if extra > 0:
            del self.buf[:extra]
            self.dropped += extra

    def text(self) -> str:
        """What was written (its last `cap` bytes), masked, as text; a cut-off start gets a
        marker. Ends the stream."""
        if self.masker is not None and self._rest:
            self._keep(self.masker.mask(self._rest, carry=self._carry))
            self._rest, self._carry = b"", 0
        return self._shown(bytes(self.buf))

    def peek(self, limit: int | None = None) -> str:
        """What was written so far (its last `limit` bytes), masked, as text, without ending
        the stream: an end that may begin a secret shows as a MASK until the next write
        tells."""
        rest = (self.masker.mask(self._rest, cut=True, carry=self._carry)
                if self.masker is not None and self._rest else b"")
        if limit is None or len(self.buf) + len(rest) <= limit:
            return self._shown(bytes(self.buf) + rest)
        data = (bytes(self.buf[len(self.buf) + len(rest) - limit:]) + rest)[-limit:]
        return self._shown(data, len(self.buf) + len(rest) - limit)

    def _shown(self, data: bytes, cut: int = 0) -> str:
        text, cut = data.decode("utf-8", "replace"), self.dropped + cut
        return f"[... {cut} bytes cut ...]\n{text}" if cut else text


class Spool(Tail):
    """A download: the first `cap` bytes written, masked as they arrive (as a Tail's), in
    `file` (a temporary file), so memory stays bounded whatever the size; `dropped` counts
    the rest."""

    def __init__(self, cap: int, masker: Masker | None, file: BinaryIO) -> None:
        super().__init__(cap, masker)
        self.file, self.size = file, 0

    def _keep(self, data: bytes) -> None:
        room = self.cap - self.size
        if room > 0:
            self.file.write(data[:room] if len(data) > room else data)
            self.size += min(room, len(data))
        self.dropped += max(0, len(data) - max(room, 0))

    def end(self, cut: bool) -> None:
        """Ends the stream; `cut`: the source went on, so an end that begins a secret is
        masked too."""
        if self.masker is not None and self._rest:
            self._keep(self.masker.mask(self._rest, cut=cut, carry=self._carry))
            self._rest, self._carry = b"", 0
        self.file.flush()


class Head:
    """Passes the first `limit` bytes written on to `into`; `more`: some came after."""

    def __init__(self, into: Tail, limit: int) -> None:
        self.into, self.limit, self.n, self.more = into, limit, 0, False

    def write(self, data: bytes) -> None:
        room = self.limit - self.n
        if room > 0:
            self.into.write(data[:room] if len(data) > room else data)
            self.n += min(room, len(data))
        self.more = self.more or len(data) > room


class Masker:
    """Replaces every resolved secret by MASK, in bytes and in text. Where secrets overlap,
    their union is masked. Secrets are matched as bytes (one that is not UTF-8 comes as
    surrogate escapes, as os.fsdecode gives it)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = {s.encode("utf-8", "surrogateescape") for s in secrets if s}
        self.hold = max(map(len, self.secrets), default=1) - 1  # a secret's start, at most

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def _spans(self, data: bytes, known: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
        """Where secrets are in `data`, with the `known` spans, merged where they overlap."""
        found = list(known)
        for s in self.secrets:
            i = data.find(s)
            while i >= 0:
                found.append((i, i + len(s)))
                i = data.find(s, i + 1)
        merged: list[tuple[int, int]] = []
        for a, b in sorted(found):
            if merged and a < merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        return merged

    def mask(self, data: bytes, cut: bool = False, carry: int = 0) -> bytes:
        """`data` masked. `cut`: it was cut short, so an end that begins a secret is masked
        too. `carry`: its first bytes are known to be (the end of) a secret."""
        known = [(0, carry)] if carry else []
        if cut:
            begun = max((k for s in self.secrets for k in range(1, len(s))
                         if data.endswith(s[:k])), default=0)
            known += [(len(data) - begun, len(data))] if begun else []
        return _join(data, self._spans(data, known))

    def stream(self, data: bytes, carry: int) -> tuple[bytes, bytes, int]:
        """(the masked start of `data` that no later byte can change, the rest to keep for
        later, how much of that rest is known to be a secret); `carry`: that of the last
        call, for the start of `data`."""
        end = len(data) - self.hold  # a secret that starts from here on may go on later
        if end <= 0:
            return b"", data, carry
        spans = self._spans(data, [(0, carry)] if carry else [])
        across = next(((a, b) for a, b in spans if a < end < b), None)
        if across and across[1] - across[0] <= _RUN:
            # that secret (or run of overlapping ones) waits, to be masked once
            end, across = across[0], (0, carry) if across[0] == 0 else None
        done = _join(data[:end], [(a, min(b, end)) for a, b in spans if a < end])
        # a longer run goes masked now and what is left of it is carried: it shows as more
        # MASKs, and what waits stays short
        return done, data[end:], across[1] - end if across else 0

    def text(self, value: str) -> str:
        raw = value.encode("utf-8", "surrogateescape")
        return self.mask(raw).decode("utf-8", "surrogateescape")


def _join(data: bytes, spans: list[tuple[int, int]]) -> bytes:
    """`data` with each of `spans` (in order, disjoint) replaced by MASK."""
    if not spans:
        return data
    out, at = [], 0
    for a, b in spans:
        out += [data[at:a], MASK.encode()]
        at = b
    out.append(data[at:])
    return b"".join(out)


class Transport(Protocol):
    """One target's connection. All methods raise TargetError subclasses only."""

    async def connect(self) -> None: ...

    async def run(self, command: str, env: Mapping[str, str], out: Tail, err: Tail,
                  shell: str | None = None, stdin: bytes | None = None) -> int: ...

    async def script(self, content: bytes, args: Sequence[str], env: Mapping[str, str],
                     out: Tail, err: Tail, shell: str | None = None) -> int: ...

    async def put(self, data: bytes, dest: str, mode: int) -> None: ...

    async def get(self, src: str, max_bytes: int, into: Tail) -> bool:
        """Writes at most `max_bytes` of the file `src` into `into` as they arrive: whether
        the file has more."""

    async def close(self) -> None: ...


@dataclass(frozen=True)
class StepResult:
    """How one step ended on one target."""

    name: str
    kind: str
    status: str  # success | failed | timeout | cancelled
    rc: int | None
    duration: float
    error: str | None = None


@dataclass(frozen=True)
class Download:
    """A file a download step fetched from a target."""

    src: str
    file: BinaryIO  # its (masked) bytes, in a temporary file
    size: int
    truncated: bool

    def chunks(self, size: int = 1 << 20) -> Iterable[bytes]:
        self.file.seek(0)
        while chunk := self.file.read(size):
            yield chunk

    def data(self) -> bytes:
        return b"".join(self.chunks())


@dataclass(frozen=True)
class TargetResult:
    """How a job ended on one target: its status, output and steps."""

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
                "downloads": [{"src": d.src, "bytes": d.size, "truncated": d.truncated}
                              for d in self.downloads]}


@dataclass(frozen=True)
class RunResult:
    """How a run ended: its status and each target's result."""

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
    """A run's status from its targets' statuses: cancelled, success or failed."""
    seen = set(statuses)
    if "cancelled" in seen:
        return "cancelled"
    return "success" if seen <= {"success"} else "failed"


# POSIX shell snippets, for transports that reach a Unix shell (ssh).

def sh_put(dest: str, mode: int) -> str:
    """Writes stdin to `dest` atomically (temp file beside it, then rename) with `mode`."""
    d = shlex.quote(dest)
    return (f'd={d}; mkdir -p "$(dirname "$d")" && t=$(mktemp "$d.XXXXXX") && '
            f'cat >"$t" && chmod {mode:o} "$t" && mv -f "$t" "$d" || {{ rm -f "$t"; exit 1; }}')


def sh_get(src: str, max_bytes: int) -> str:
    """Prints at most max_bytes + 1 bytes of `src` (one more tells it was cut)."""
    s = shlex.quote(src)
    return (f'f={s}; if [ ! -e "$f" ]; then echo "no such file: $f" >&2; exit 2; fi; '
            f'if [ ! -f "$f" ]; then echo "not a regular file (downloads read regular files '
            f'only): $f" >&2; exit 2; fi; '
            f'head -c {max_bytes + 1} "$f"')
