"""The `http` step, sent from the worker for each target, and the `http` transport (an endpoint
with a base URL and no shell, on which only http steps run).

The request runs in a thread (http.client blocks): each request, its answer read to the end,
takes at most the check's timeout (a timer shuts its socket down then: an endpoint that
answers a byte at a time cannot hold the step or the thread), so a cancelled step's thread
ends by then. TLS is verified, against the
system's CAs or, with `ca_file`, against that repository file's only. Redirects are followed up
to `max_redirects`; never from https to http, and the configured headers (secrets among them)
are sent to the first URL's origin only. The answer (status, headers, the first output-cap
bytes of the body) goes in the target's output, masked.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import socket
import ssl
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from runner.config.http import HttpCheck, substitute, url_host
from runner.config.model import SecretRef, Target
from runner.errors import RunnerError, TargetError
from runner.executor.attempt import Attempt
from runner.executor.base import FileBlob, Masker, Tail
from runner.executor.secrets import config_secret
from runner.settings import Settings

_REDIRECTS = (301, 302, 303, 307, 308)


class _Failed(RunnerError):
    """The request got no answer, or not one to accept: why, in words after 'step X: '."""


@dataclass(frozen=True)
class Request:
    """One check made concrete for one target: substituted, secrets resolved."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    context: ssl.SSLContext
    timeout: float
    max_redirects: int
    cap: int


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    url: str  # after redirects
    redirects: int
    headers: list[tuple[str, str]]
    body: bytes  # at most cap + 1 bytes


def target_host(target: Target) -> str:
    """What $TARGET_HOST means for `target`: its host, its base_url's host, or localhost."""
    if target.base_url:
        return urlsplit(target.base_url).hostname or ""
    return target.host or "localhost"


def prepare(check: HttpCheck, name: str, target: Target, files: Mapping[str, FileBlob],
            environ: Mapping[str, str], settings: Settings, who: str = ""
            ) -> tuple[Request, list[str]]:
    """The request for target `name`, and the secrets its headers resolved to (to mask);
    `who` names the step in a secret's error."""
    host, url = target_host(target), check.url
    url = substitute(url, url_host(host), name)
    if url.startswith("/"):
        if not target.base_url:
            raise _Failed(f"url {check.url!r} is a path and the target has no base_url; write "
                          "a full URL like https://$TARGET_HOST/health")
        url = target.base_url.rstrip("/") + url
    headers, secrets = {"User-Agent": "runner"}, []
    for key, value in check.headers:
        if isinstance(value, SecretRef):
            headers[key] = config_secret(value, f"{who or name} header {key}", environ,
                                         settings)
            secrets.append(headers[key])
        else:
            headers[key] = substitute(value, host, name)
    body = None if check.body is None else substitute(check.body, host, name).encode()
    return Request(check.method, url, headers, body, _context(check, files), check.timeout,
                   check.max_redirects, settings.output_cap), secrets


def _context(check: HttpCheck, files: Mapping[str, FileBlob]) -> ssl.SSLContext:
    if check.ca_file is None:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cadata=files[check.ca_file].data.decode("ascii"))
    except (ssl.SSLError, ValueError):
        raise _Failed(f"ca_file {check.ca_file!r} holds no PEM certificate; give the CA's "
                      "certificate in PEM form") from None


def fetch(r: Request) -> Answer:
    """Sends `r`, following redirects as bounded; _Failed says why it got no answer."""
    try:
        return _follow(r)
    except ValueError as e:  # a URL urllib cannot split (a bad port, a bad IPv6 address)
        raise _Failed(f"{r.method} {r.url} failed: {e}") from None


def _follow(r: Request) -> Answer:
    method, url, body, headers = r.method, r.url, r.body, r.headers
    origin = _origin(url)
    for hop in range(r.max_redirects + 1):
        status, reason, got, data = _once(method, url, headers, body, r)
        location = dict((k.lower(), v) for k, v in got).get("location")
        if status not in _REDIRECTS or not location or not r.max_redirects:
            return Answer(status, reason, url, hop, got, data)
        if hop == r.max_redirects:
            raise _Failed(f"{r.method} {r.url} was redirected more than {r.max_redirects} times "
                          f"(the last to {location}); fix the redirect loop or raise "
                          "max_redirects")
        to = urljoin(url, location)
        if urlsplit(to).scheme not in ("http", "https") or (
                urlsplit(url).scheme == "https" and urlsplit(to).scheme == "http"):
            raise _Failed(f"{r.method} {url} redirected to {to}, which is not followed (only "
                          "http(s), never from https to http)")
        if status == 303 or (status in (301, 302) and method == "POST"):
            method, body = ("HEAD" if method == "HEAD" else "GET"), None
        if _origin(to) != origin:
            headers = {"User-Agent": "runner"}  # the configured ones stay with their origin
        url = to
    raise AssertionError("unreachable")


def _origin(url: str) -> tuple[str, str | None, int | None]:
    p = urlsplit(url)
    return p.scheme, p.hostname, p.port


def _once(method: str, url: str, headers: Mapping[str, str], body: bytes | None, r: Request
          ) -> tuple[int, str, list[tuple[str, str]], bytes]:
    p = urlsplit(url)
    host = p.hostname or ""
    conn: http.client.HTTPConnection | None = None
    held: list[socket.socket] = []  # the socket, which a closing connection lets go of
    cut = threading.Event()  # set by the timer before it shuts the socket down
    late = threading.Timer(r.timeout, _cut, (held, cut))
    late.start()
    try:
        conn = (http.client.HTTPSConnection(host, p.port, timeout=r.timeout, context=r.context)
                if p.scheme == "https" else http.client.HTTPConnection(host, p.port,
                                                                       timeout=r.timeout))
        conn.request(method, (p.path or "/") + (f"?{p.query}" if p.query else ""), body,
                     dict(headers))  # each connect and send bounded by the socket's timeout
        held.append(conn.sock)  # the timer bounds the answer from here
        if cut.is_set():
            raise TimeoutError
        answer = conn.getresponse()
        data = b"" if method == "HEAD" else answer.read(r.cap + 1)
        if cut.is_set():  # cut: what was read is not the whole answer
            raise TimeoutError
        return answer.status, answer.reason, answer.getheaders(), data
    except ssl.SSLCertVerificationError as e:
        why = f"the TLS certificate of {host} is not trusted ({e.verify_message}); give the CA " \
              "that signed it as ca_file"
    except (OSError, http.client.HTTPException) as e:
        why = (f"no complete answer within {r.timeout:g}s (timeout)"
               if isinstance(e, TimeoutError) or cut.is_set()
               else _said(e))
    except ValueError as e:  # never echoed when about a header: its value may be a secret
        why = ("a header value holds a line break or a character outside latin-1"
               if "header" in str(e).lower() else str(e))
    finally:
        late.cancel()
        if conn is not None:
            conn.close()
    raise _Failed(f"{method} {url} failed: {why}")


def _said(e: OSError | http.client.HTTPException) -> str:
    """Why a request failed; what the endpoint sent is quoted with its controls escaped."""
    if isinstance(e, http.client.BadStatusLine) and not isinstance(
            e, http.client.RemoteDisconnected):
        return f"its answer does not start with an HTTP status line ({str(e)[:80]!r})"
    text = str(getattr(e, "strerror", None) or e or type(e).__name__)
    return text if text.isprintable() else ascii(text)


def _cut(held: list[socket.socket], cut: threading.Event) -> None:
    """Ends a request past its time: its socket (TLS or not) shut down under it."""
    cut.set()
    for sock in held:
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


def report(a: Answer, method: str, cap: int, masker: Masker) -> bytes:
    """The answer as the target's output, masked: status line, headers, blank line, body; cut
    so that the whole fits in `cap` bytes (the output keeps its last `cap`: the status line
    stays). Masked before it is cut, so a secret at the cut is masked whole."""
    after = f" (after {a.redirects} redirect{'s' * (a.redirects != 1)})" if a.redirects else ""
    lines = [f"{method} {a.url}: {a.status} {a.reason}{after}"]
    lines += [f"{k}: {v}" for k, v in a.headers]
    head = masker.mask("\n".join(lines).encode() + b"\n\n")
    body = masker.mask(a.body, cut=len(a.body) > cap)  # read up to cap + 1 bytes
    room = max(0, cap - len(head) - 64)  # 64: the marker
    if len(body) > room or len(a.body) > cap:  # (a masked body may fit, cut as it was read)
        shown = body[:room]
        return head + shown + f"\n[... body cut at {len(shown)} bytes ...]\n".encode()
    return head + body + (b"\n" if body and not body.endswith(b"\n") else b"")


def expected(check: HttpCheck) -> str:
    """'200 or 204', or 'a 2xx status'."""
    codes = [str(c) for c in check.expect]
    return " or ".join([", ".join(codes[:-1]), codes[-1]] if len(codes) > 1 else codes) \
        if codes else "a 2xx status"


async def http_step(run: Attempt, check: HttpCheck, threads: Executor,
                    files: Mapping[str, FileBlob], environ: Mapping[str, str],
                    settings: Settings) -> int:
    """Runs `check` for `run`'s target; writes the answer to its output. 0, or TargetError
    (one sentence: the target, the step, what happened)."""
    who = f"{run.name}: step {run.step!r}"
    secrets: list[str] = []
    try:
        request, secrets = prepare(check, run.name, run.target, files, environ, settings, who)
        answer = await asyncio.get_running_loop().run_in_executor(threads, fetch, request)
    except _Failed as e:
        raise TargetError(run.name, Masker(secrets).text(f"{who}: {e}")) from None
    every = [*secrets, *(s.decode("utf-8", "surrogateescape") for s in run.masker.secrets)]
    run.out.write(report(answer, request.method, request.cap, Masker(every)))
    ok = answer.status in check.expect if check.expect else 200 <= answer.status < 300
    if not ok:
        raise TargetError(run.name, Masker(secrets).text(  # the endpoint wrote answer.url
            f"{who}: {request.method} {answer.url} returned {answer.status}, expected "
            f"{expected(check)}"))
    return 0


class HttpConnector:
    """Opens http transports (nothing to connect to, a shell to refuse), and holds the
    threads every http step's request runs in (http.client blocks), whatever its target's
    transport: a pool of its own, so slow endpoints never wait behind asyncio's default."""

    def __init__(self) -> None:
        self.threads = ThreadPoolExecutor(max_workers=64, thread_name_prefix="http")

    def open(self, target: Target, secrets: Mapping[str, str],
             env: Mapping[str, str]) -> HttpTransport:
        return HttpTransport(target)

    async def close(self) -> None:
        self.threads.shutdown(wait=False, cancel_futures=True)


class HttpTransport:
    """An http target: only http steps run on it (validation says so before a run)."""

    def __init__(self, target: Target) -> None:
        self.target = target

    def _refuse(self) -> TargetError:
        name = self.target.name
        return TargetError(name, f"{name}: transport http has no shell; only http steps run "
                                 "on it")

    async def connect(self) -> None:
        return None

    async def run(self, command: str, env: Mapping[str, str], out: Tail, err: Tail,
                  shell: str | None = None, stdin: bytes | None = None) -> int:
        raise self._refuse()

    async def script(self, content: bytes, args: Sequence[str], env: Mapping[str, str],
                     out: Tail, err: Tail, shell: str | None = None) -> int:
        raise self._refuse()

    async def put(self, data: bytes, dest: str, mode: int) -> None:
        raise self._refuse()

    async def get(self, src: str, max_bytes: int, into: Tail) -> bool:
        raise self._refuse()

    async def close(self) -> None:
        return None
