"""The ssh transport's host key check: known_hosts.py's OpenSSH decisions, applied to asyncssh.

asyncssh's own known_hosts matching differs from OpenSSH's (it falls back to port-less lines
even past a `@revoked` one, and matches the peer's address), so connections get
known_hosts=None and HostKeyCheck decides during the key exchange, before any credential is
sent. asyncssh has no callback that sees a host certificate whole, so HostKeyCheck wraps the
connection's own validate_server_host_key (which, with known_hosts=None, only decodes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncssh
from asyncssh.public_key import CERT_TYPE_HOST, decode_ssh_certificate

from runner.executor import known_hosts


@dataclass(frozen=True)
class KnownHosts:
    """A known_hosts file, parsed: what host keys are checked against."""

    path: str
    entries: tuple[known_hosts.Entry, ...]


def read(path: str) -> KnownHosts:
    """The file's usable lines; a missing or unreadable file trusts nothing."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return KnownHosts(path, known_hosts.parse(f.read()))
    except OSError:
        return KnownHosts(path, ())


class HostKeyCheck(asyncssh.SSHClient):
    """One connection attempt's check; `verdict` tells why a key was refused."""

    def __init__(self, host: str, port: int, known: KnownHosts) -> None:
        self.host, self.port, self.known = host, port, known
        self.verdict: known_hosts.Verdict | None = None

    def algorithms(self) -> list[str]:
        return known_hosts.algorithms(self.known.entries, self.host, self.port)

    def connection_made(self, conn: asyncssh.SSHClientConnection) -> None:
        decode = conn.validate_server_host_key

        def validate(data: bytes) -> asyncssh.SSHKey:
            self.verdict = known_hosts.check(self.known.entries, self.host, self.port,
                                             _shown(data, self.host))
            if self.verdict.status != "ok":
                raise asyncssh.HostKeyNotVerifiable(self.verdict.status)
            return decode(data)

        conn.validate_server_host_key = validate  # type: ignore[method-assign,assignment]

    def refusal(self) -> str:
        """The sentence saying why the host key was refused."""
        assert self.verdict is not None
        host, port, path, verdict = self.host, self.port, self.known.path, self.verdict
        where, name = f"{host}:{port}", verdict.name
        if verdict.status == "changed":
            return (f"host key of {where} has CHANGED since it was recorded in known_hosts "
                    f"{path} as {name}; refused (someone may be intercepting; if the host was "
                    "reinstalled, replace its known_hosts entry)")
        if verdict.status.startswith("revoked"):
            what = ("the CA that signed the host certificate" if verdict.status == "revoked-ca"
                    else "the host key")
            return (f"{what} of {where} is marked @revoked in known_hosts {path}; refused (it "
                    "must never be trusted again: give the host a new key)")
        cert = f" and its certificate is not valid: {verdict.problem}" if verdict.problem else ""
        return (f"host key of {where} is not in known_hosts {path} as {name}{cert}; refused "
                f"(check its fingerprint, then add it: ssh-keyscan -p {port} {host} >> {path})")


def _shown(data: bytes, host: str) -> known_hosts.Shown:
    try:
        cert: Any = decode_ssh_certificate(data)
    except asyncssh.KeyImportError:
        return known_hosts.Shown(data)  # a plain key, in wire format
    try:
        cert.validate(CERT_TYPE_HOST, host.lower())
        problem = None
    except ValueError as e:
        problem = str(e).lower()
    return known_hosts.Shown(cert.key.public_data, cert.signing_key.public_data, problem)
