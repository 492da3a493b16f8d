"""known_hosts, read and checked the way OpenSSH's `ssh` does it (9.x, with
StrictHostKeyChecking=yes and CheckHostIP=no, its default since 8.5). Pure: no I/O, no asyncssh.

- A host is looked up under the name it was given, lowercased: `host` on port 22,
  `[host]:port` on any other port. Its address is never looked up (CheckHostIP=no): a target
  `localhost` matches only lines naming `localhost`. When no key or CA line matches
  `[host]:port`, the key is looked up once more under plain `host`, and accepted there only if
  it is recorded exactly (OpenSSH's "checking without port identifier").
- A line matches a name when one of its comma-separated patterns (`*` and `?` wildcards,
  case-insensitive) matches and none of its `!negated` ones does; a hashed name
  (`|1|salt|hash`, `ssh-keygen -H`) matches when HMAC-SHA1(salt, name) is the hash.
- `@revoked` refuses its key, a certificate for it, and every certificate it signed.
- A host certificate is trusted when an `@cert-authority` line for the name holds its signing
  key and it is valid now for the host name as given; otherwise the certificate is dropped and
  its plain key checked like any other (OpenSSH's "Retry with plain key").
- Lines OpenSSH would not parse (unknown marker or key type, bad base64 or hash) are ignored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass

CA, REVOKED = "@cert-authority", "@revoked"
# OpenSSH 9.x's default HostKeyAlgorithms, in its order.
OPENSSH_ALGORITHMS = (
    "ssh-ed25519-cert-v01@openssh.com", "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com", "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    "sk-ssh-ed25519-cert-v01@openssh.com", "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "rsa-sha2-512-cert-v01@openssh.com", "rsa-sha2-256-cert-v01@openssh.com",
    "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
    "rsa-sha2-512", "rsa-sha2-256")
# How many SSH strings each key type's blob holds (the type name included).
_FIELDS = {"ssh-ed25519": 2, "ssh-rsa": 3, "ssh-dss": 5, "ecdsa-sha2-nistp256": 3,
           "ecdsa-sha2-nistp384": 3, "ecdsa-sha2-nistp521": 3,
           "sk-ssh-ed25519@openssh.com": 3, "sk-ecdsa-sha2-nistp256@openssh.com": 4}


@dataclass(frozen=True)
class Entry:
    """One usable known_hosts line."""

    marker: str  # "", CA or REVOKED
    hosts: str   # the host patterns, as written
    type: str    # the key's type, e.g. ssh-ed25519
    key: bytes   # the key in SSH wire format


@dataclass(frozen=True)
class Shown:
    """The host key a server presented: its plain key; for a certificate also the signing CA
    key, and why the certificate does not fit the host (None: it fits)."""

    key: bytes
    ca: bytes | None = None
    problem: str | None = None


@dataclass(frozen=True)
class Verdict:
    """What a known_hosts file says of a host's key: ok, new, changed or revoked."""

    status: str  # ok | new | changed | revoked | revoked-ca
    name: str    # the name the host was looked up under
    problem: str | None = None  # why a certificate from a trusted CA was not enough


def parse(text: str) -> tuple[Entry, ...]:
    """The entries of a known_hosts file's text, comments and blank lines skipped."""
    entries = []
    for raw in text.split("\n"):
        line = raw.lstrip(" \t")
        if not line or line.startswith("#"):
            continue
        marker = ""
        if line.startswith("@"):  # ends at the first space, else the first tab (hostfile.c)
            cut = line.find(" ") if " " in line else line.find("\t")
            marker, line = line[:max(cut, 0)], line[cut:].lstrip(" \t")
            if cut < 0 or marker not in (CA, REVOKED) or line.startswith("@"):
                continue
        fields = re.split(r"[ \t]+", line, maxsplit=3)
        if len(fields) < 3:
            continue
        kind = "ssh-rsa" if fields[1] in ("rsa-sha2-256", "rsa-sha2-512") else fields[1]
        key = _blob(fields[2], kind)
        if key is not None:
            entries.append(Entry(marker, fields[0], kind, key))
    return tuple(entries)


def _blob(text: str, kind: str) -> bytes | None:
    """The key's bytes when they are a well-formed key of type `kind`, else None."""
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    strings, at = [], 0
    while at + 4 <= len(data):
        (size,) = struct.unpack(">I", data[at:at + 4])
        strings.append(data[at + 4:at + 4 + size])
        at += 4 + size
    if at != len(data) or len(strings) != _FIELDS.get(kind) or strings[0] != kind.encode():
        return None
    if kind.startswith("ecdsa-sha2-") and strings[1] != kind.removeprefix("ecdsa-sha2-").encode():
        return None
    return data


def lookup_name(host: str, port: int) -> str:
    """The name a host is listed under in known_hosts: HOST, or [HOST]:PORT off port 22."""
    host = host.lower()
    return host if port in (0, 22) else f"[{host}]:{port}"


def matches(hosts: str, name: str) -> bool:
    """Does a known_hosts host field (patterns, negations or a hashed name) match `name`?"""
    if hosts.startswith("|"):
        return _hashed(hosts, name)
    positive = False
    for pattern in hosts.split(","):
        negated = pattern.startswith("!")
        pattern = pattern[1:] if negated else pattern
        glob = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                       for c in pattern.lower())
        if len(pattern) < 1023 and re.fullmatch(glob, name, re.DOTALL):
            if negated:
                return False
            positive = True
    return positive


def _hashed(hosts: str, name: str) -> bool:
    magic, _, rest = hosts.partition("|1|")
    salt_text, sep, _ = rest.partition("|")
    try:
        salt = base64.b64decode(salt_text, validate=True)
    except (binascii.Error, ValueError):
        return False
    if magic or not sep or len(salt) != 20:
        return False
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return hosts == f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def check(entries: Sequence[Entry], host: str, port: int, shown: Shown) -> Verdict:
    """OpenSSH's decision on the key `shown` by `host`:`port` (sshconnect.c check_host_key)."""
    name = lookup_name(host, port)
    found = [e for e in entries if matches(e.hosts, name)]
    problem = None
    while True:
        status = _status(found, shown)
        if status == "ok" and shown.ca is not None and shown.problem:
            status, problem = "invalid", shown.problem
        elif status == "new" and port not in (0, 22) and check(entries, host, 0,
                                                                  shown).status == "ok":
            status = "ok"
        if status == "ok" or shown.ca is None or status.startswith("revoked"):
            return Verdict(status, name, problem)
        shown = Shown(shown.key)  # the certificate did not do: its plain key may


def _status(found: Sequence[Entry], shown: Shown) -> str:
    want, status = CA if shown.ca is not None else "", "new"
    for e in found:
        if e.marker != want:
            continue
        if e.key == (shown.ca if shown.ca is not None else shown.key):
            status = "ok"
            break
        if shown.ca is None:
            status = "changed"
    revoked = {e.key for e in found if e.marker == REVOKED}
    if shown.key in revoked:
        return "revoked"
    return "revoked-ca" if shown.ca in revoked else status


def algorithms(entries: Sequence[Entry], host: str, port: int) -> list[str]:
    """The host key algorithms to offer, in OpenSSH's order (sshconnect2.c
    order_hostkeyalgs): all of them when a plain key of the first one's type is known, else
    those with a known key type (and certificates when a CA line matches) first."""
    name = lookup_name(host, port)
    found = [e for e in entries if matches(e.hosts, name)]
    known = {e.type for e in found if not e.marker}
    if _plain(OPENSSH_ALGORITHMS[0]) in known:
        return list(OPENSSH_ALGORITHMS)
    has_ca = any(e.marker == CA for e in found)
    first = [a for a in OPENSSH_ALGORITHMS
             if (has_ca and "-cert-" in a) or _plain(a) in known]
    return first + [a for a in OPENSSH_ALGORITHMS if a not in first]


def _plain(algorithm: str) -> str:
    """The key type an algorithm uses: rsa-sha2-512-cert-v01@openssh.com -> ssh-rsa."""
    base = algorithm.replace("-cert-v01@openssh.com", "")
    if base.startswith("sk-") and "@" not in base:
        base += "@openssh.com"
    return "ssh-rsa" if base.startswith("rsa-sha2-") else base
