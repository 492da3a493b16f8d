"""What a discovery proposes (pure): new targets and their host keys as file texts, and the
lines a reviewer reads. Hosts already configured (same host and port) are known, changed (a
different key: flagged, never overwritten), revoked or unrecorded (no key in their known_hosts)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from runner.config.model import Target
from runner.discover.scan import Address, Found
from runner.executor.known_hosts import lookup_name

TARGETS = "targets.d/discovered.yaml"
KNOWN_HOSTS = "targets.d/discovered.known_hosts"
HEADER = ("# Targets `runner discover ssh` found; their host keys are in discovered.known_hosts.\n"
          "targets:\n")
FLAGGED = ("changed", "revoked", "revoked-ca")


@dataclass(frozen=True)
class Proposal:
    """The files to commit (none: nothing new), the report, whether a key was flagged, how
    many targets are new and the known_hosts lines of their keys."""

    files: Mapping[str, str]
    lines: tuple[str, ...]
    flagged: bool
    new: int
    keys: tuple[str, ...] = ()


def configured(targets: Mapping[str, Target]) -> dict[Address, str]:
    """The ssh targets of a configuration by the address they reach (see at)."""
    return {at(Address(t.host, t.port or 22)): name for name, t in targets.items()
            if t.transport == "ssh" and t.host}


def at(address: Address) -> Address:
    """An address as configured() keys it: its host lowercased."""
    return Address(address.host.lower(), address.port)


def propose(found: Sequence[Found], targets: Mapping[str, Target], today: str,
            user: str | None, current: Mapping[str, str | None]) -> Proposal:
    """`current`: the texts of TARGETS and KNOWN_HOSTS at the base commit (None: absent)."""
    where = configured(targets)
    taken = set(targets)
    entries, keys, lines, flagged, silent = [], [], [], False, []
    for f in found:
        name = where.get(at(f.address))
        addr = str(f.address)
        if f.key is None:
            silent.append(f"{addr} ({f.error})")
            continue
        shown = f"{fingerprint(f.key)}" + (f"  {f.banner}" if f.banner else "")
        note = f"  ({f.error})" if f.error else ""
        if f.verdict in FLAGGED:
            flagged = True
            what = "CHANGED" if f.verdict == "changed" else "REVOKED"
            lines.append(f"{what:<10} {name or '(new)'} {addr}: presents {shown}, which its "
                         f"known_hosts {'does not record' if what == 'CHANGED' else 'revokes'}"
                         f"; not written (ask the host's owner; if it was reinstalled, replace "
                         f"its known_hosts line by hand){note}")
        elif name is not None:
            state = "known" if f.verdict == "ok" else "unrecorded"
            lines.append(f"{state:<10} {name} {addr}: {shown}" + (
                "" if state == "known" else "; its known_hosts has no key for it: runs there "
                f"are refused until this line is added: {lookup_name(*_hp(f))} {f.key}") + note)
        else:
            new = _name(f, taken)
            taken.add(new)
            entries.append(f"  {new}: {_entry(f, today, user)}\n")
            if f.verdict != "ok":
                keys.append(f"{lookup_name(*_hp(f))} {f.key}\n")
            facts = " ".join(f"{k}={v}" for k, v in f.facts if k != "hostname")
            lines.append(f"{'new':<10} {new} {addr}: {shown}" + (f"  {facts}" if facts else "")
                         + note)
    if silent:
        more = f" and {len(silent) - 10} more" if len(silent) > 10 else ""
        lines.append(f"{'no ssh':<10} {len(silent)} address(es): {', '.join(silent[:10])}{more}")
    files = {}
    if entries:
        files[TARGETS] = _append(current.get(TARGETS), HEADER, "".join(entries))
        if keys:
            files[KNOWN_HOSTS] = _append(current.get(KNOWN_HOSTS), "", "".join(keys))
    return Proposal(files, tuple(lines), flagged, len(entries), tuple(k.strip() for k in keys))


def _hp(f: Found) -> tuple[str, int]:
    return f.address.host, f.address.port


def _append(text: str | None, header: str, more: str) -> str:
    if not text:
        return header + more
    return text + ("" if text.endswith("\n") else "\n") + more


def _entry(f: Found, today: str, user: str | None) -> str:
    """One target, as a YAML flow mapping on one line (JSON scalars, so nothing is misread)."""
    facts = dict(f.facts)
    found = {"os": facts.get("os") or facts.get("system", "").lower(),
             "os_version": facts.get("os_version", "")}
    labels = {k: v for k, v in found.items() if v} | {"discovered": today}
    fields: dict[str, object] = {"transport": "ssh", "host": f.address.host}
    if f.address.port != 22:
        fields["port"] = f.address.port
    if user:
        fields["user"] = user
    fields["known_hosts"] = KNOWN_HOSTS
    fields["labels"] = labels
    about = "; ".join(x for x in (f.banner, " ".join(
        facts[k] for k in ("system", "kernel") if k in facts)) if x)
    if about:
        fields["description"] = about

    def flow(value: object) -> str:
        if isinstance(value, dict):
            return "{" + ", ".join(f"{k}: {flow(v)}" for k, v in value.items()) + "}"
        return json.dumps(value, ensure_ascii=False)

    return flow(fields)


def _name(f: Found, taken: set[str]) -> str:
    """A target name from the host's name (or its address), sanitized and unique."""
    raw = dict(f.facts).get("hostname") or f.address.host
    if f.address.port != 22 and "hostname" not in dict(f.facts):
        raw += f"-{f.address.port}"
    base = re.sub(r"[^a-z0-9._-]+", "-", raw.lower()).strip("._-")[:56].rstrip("._-") or "host"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    return name


def fingerprint(key: str) -> str:
    """`type SHA256:...` of a `type base64` key, as ssh-keygen -l shows it."""
    kind, _, data = key.partition(" ")
    try:
        digest = hashlib.sha256(base64.b64decode(data, validate=True)).digest()
    except (binascii.Error, ValueError):
        return key
    return f"{kind} SHA256:{base64.b64encode(digest).decode().rstrip('=')}"
