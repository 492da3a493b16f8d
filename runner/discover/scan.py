"""`runner discover ssh`'s scan (asyncssh): each address's host key and SSH banner, fetched
during the key exchange without logging in; with a login, also its hostname, OS and kernel.

The key is checked against what the configuration records for the address (known_hosts.py, as
a run would check it, offering the same host key algorithms, plain keys only). A login happens
only when that check says `ok` or `new`: for a new host the key just recorded is the one
trusted for the login (trust on first use, for this one read-only command). A changed or
revoked key is recorded and the connection dropped before any credential is sent.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncssh

from runner.errors import UsageError
from runner.executor import known_hosts
from runner.executor.hostkeys import KnownHosts

MAX_FACTS = 4096  # bytes of the facts command's output read; a host saying more is cut
MAX_TEXT = 200  # characters kept of a banner or a fact
MAX_ADDRESSES = 65536  # a /16 of IPv4: beyond it a scan is a mistake more often than a plan
# One read-only command: hostname, kernel name and release, then /etc/os-release's ID, VERSION_ID.
FACTS = ('uname -n; uname -s; uname -r; (. /etc/os-release && echo "$ID" && '
         'echo "$VERSION_ID") 2>/dev/null')


@dataclass(frozen=True)
class Address:
    """One host:port to scan."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Login:
    """Who logs in to learn a host's facts: a user and the keys offered (empty: the agent's
    and ~/.ssh/id_* keys)."""

    user: str
    keys: tuple[asyncssh.SSHKey, ...] = ()


def login(user: str, key_file: str | None) -> Login:
    """The Login of --user and --key, the key file read once (UsageError when it cannot be)."""
    if key_file is None:
        return Login(user)
    try:
        return Login(user, (asyncssh.read_private_key(key_file),))
    except (OSError, asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as e:
        raise UsageError(f"--key {key_file}: cannot read the private key "
                         f"({getattr(e, 'strerror', None) or e}); give an unencrypted "
                         "OpenSSH private key file") from None


@dataclass(frozen=True)
class Found:
    """What one address answered: its host key (`type base64`), the verdict of the recorded
    known_hosts on it (ok, new, changed, revoked...), its SSH banner, the facts a login
    learned (hostname, os, os_version, kernel), and why something failed (None: nothing)."""

    address: Address
    key: str | None = None
    verdict: str | None = None
    banner: str = ""
    facts: tuple[tuple[str, str], ...] = ()
    error: str | None = None


def addresses(specs: Sequence[str], port: int) -> list[Address]:
    """The addresses CIDR, HOST or HOST:PORT arguments name (in order, once each)."""
    out: dict[Address, None] = {}
    for spec in specs:
        if "/" in spec:
            out.update(dict.fromkeys(_network(spec, port, MAX_ADDRESSES - len(out))))
        else:
            out[_host(spec, port)] = None
        if len(out) > MAX_ADDRESSES:
            break
    if len(out) > MAX_ADDRESSES:
        raise UsageError(f"the arguments name more than {MAX_ADDRESSES} addresses (a /16), "
                         "more than runner discover scans at once; scan smaller networks in "
                         "turn")
    return list(out)


def _network(spec: str, port: int, room: int) -> list[Address]:
    try:
        net = ipaddress.ip_network(spec, strict=False)
    except ValueError:
        raise UsageError(f"{spec!r} is not a network; write one like 10.0.0.0/24") from None
    if net.num_addresses > MAX_ADDRESSES:
        raise UsageError(f"network {spec} holds {net.num_addresses} addresses, more than the "
                         f"{MAX_ADDRESSES} (a /16) runner discover scans at once; split it into "
                         "smaller networks") from None
    hosts = list(net.hosts()) if net.num_addresses > 2 else list(net)
    return [Address(str(a), port) for a in hosts[:room + 1]]


def _host(spec: str, port: int) -> Address:
    host, text = spec, ""
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        text = rest.removeprefix(":")
    elif spec.count(":") == 1:
        host, _, text = spec.partition(":")
    if text:
        if not text.isdigit() or not 0 < int(text) < 65536:
            raise UsageError(f"{spec!r}: the port {text!r} is not a number from 1 to 65535")
        port = int(text)
    if not host or host.startswith("-") or any(c.isspace() for c in host):
        raise UsageError(f"{spec!r} is not a host; write a name, an address, HOST:PORT or a "
                         "network like 10.0.0.0/24")
    return Address(host, port)


async def scan(targets: Sequence[Address], known: Callable[[Address], KnownHosts],
               login: Callable[[Address], Login | None], concurrency: int,
               timeout: float) -> list[Found]:
    """Every address scanned, at most `concurrency` at once, each within `timeout` seconds;
    `known`: the known_hosts its key is checked against; `login`: who logs in there, if any."""
    gate = asyncio.Semaphore(concurrency)

    async def one(address: Address) -> Found:
        async with gate:
            try:
                async with asyncio.timeout(timeout):
                    return await _probe(address, known(address), login(address), timeout)
            except TimeoutError:
                return Found(address, error=f"no answer within {timeout:g}s")

    return list(await asyncio.gather(*(one(a) for a in targets)))


class _Recorder(asyncssh.SSHClient):
    """Records the host key and banner during the key exchange; lets a login go on only when
    the recorded known_hosts says ok or new."""

    def __init__(self, address: Address, known: KnownHosts, login: bool) -> None:
        self.address, self.known, self.login = address, known, login
        self.key: str | None = None
        self.verdict: str | None = None
        self.banner = ""

    def connection_made(self, conn: asyncssh.SSHClientConnection) -> None:
        decode = conn.validate_server_host_key

        def validate(data: bytes) -> asyncssh.SSHKey:
            key = decode(data)
            self.key = " ".join(key.export_public_key("openssh").decode().split()[:2])
            self.banner = str(conn.get_extra_info("server_version") or "")
            self.verdict = known_hosts.check(self.known.entries, self.address.host,
                                             self.address.port, known_hosts.Shown(data)).status
            if not self.login or self.verdict not in ("ok", "new"):
                raise asyncssh.HostKeyNotVerifiable("recorded")  # ends it: no credential sent
            return key

        conn.validate_server_host_key = validate  # type: ignore[method-assign,assignment]


async def _probe(address: Address, known: KnownHosts, login: Login | None,
                 timeout: float) -> Found:
    rec = _Recorder(address, known, login is not None)
    algs = [a for a in known_hosts.algorithms(known.entries, address.host, address.port)
            if "-cert-" not in a]
    try:
        conn = await asyncssh.connect(
            address.host, address.port, known_hosts=None, config=None,
            client_factory=lambda: rec, server_host_key_algs=algs,
            username=login.user if login else "discover",
            client_keys=list(login.keys) if login and login.keys else (),
            connect_timeout=timeout)
    except asyncssh.HostKeyNotVerifiable:
        return _found(address, rec)
    except asyncssh.PermissionDenied:
        return _found(address, rec, f"login as {login.user if login else '?'} refused")
    except (OSError, asyncssh.Error) as e:
        if rec.key:
            return _found(address, rec, f"login failed: {_why(e)}")
        return Found(address, error=_why(e))
    said = b""
    try:
        async with conn, conn.create_process(FACTS, encoding=None) as process:
            while len(said) < MAX_FACTS and (more := await process.stdout.read(MAX_FACTS)):
                said += more
    except (OSError, asyncssh.Error) as e:  # e.g. sessions refused, connection lost
        return _found(address, rec, f"logged in, but the facts were not read: {_why(e)}")
    lines = [printable(x) for x in said[:MAX_FACTS].decode("utf-8", "replace").split("\n")]
    names = ("hostname", "system", "kernel", "os", "os_version")
    facts = tuple((k, v) for k, v in zip(names, lines, strict=False) if v)
    return _found(address, rec, None, facts)


def _found(address: Address, rec: _Recorder, error: str | None = None,
           facts: tuple[tuple[str, str], ...] = ()) -> Found:
    return Found(address, rec.key, rec.verdict, printable(rec.banner), facts, error)


def printable(text: str) -> str:
    """What a remote host said, as one line a terminal and a YAML file show as it is: each
    character that is not printable (controls, escapes, line and format characters,
    non-characters) as '?', stripped, at most MAX_TEXT characters."""
    return "".join(c if c.isprintable() else "?" for c in text.strip()[:MAX_TEXT]).strip()


def _why(e: BaseException) -> str:
    if isinstance(e, asyncssh.Error):
        return printable(str(e.reason))  # a DISCONNECT's reason is the host's own words
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, OSError):
        return str(e.strerror or e)
    return str(e)
