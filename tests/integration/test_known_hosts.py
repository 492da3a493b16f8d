"""known_hosts decided exactly as OpenSSH decides. Every variant below runs twice against real
sshds (one with a plain host key, one whose host key also has a certificate from a test CA):
once through OpenSSH's own `ssh` client, once through runner; both must reach the verdict the
table states, and runner must say it in the exact sentence."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from runner.config import model
from runner.executor.base import TargetResult
from runner.executor.engine import Engine
from tests.servers import Sshd, keygen, start_sshd


@dataclass(frozen=True)
class World:
    dir: Path
    servers: dict[str, Sshd]
    keys: dict[str, str]  # placeholder -> "type base64"


@pytest.fixture(scope="module")
def world(sshd: Sshd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    d = tmp_path_factory.mktemp("known_hosts")
    keys = {name: " ".join(keygen(d / name).split()[:2]) for name in ("ca", "oca", "other")}
    cert = start_sshd(d / "cert-sshd", ca=d / "ca")
    try:
        yield World(d, {"plain": sshd, "cert": cert},
                    {"CA": keys["ca"], "OCA": keys["oca"], "O": keys["other"]})
    finally:
        cert.stop()


# (id, target host, known_hosts lines, verdict on the plain sshd, verdict on the cert sshd).
# {K} is the server's host key, {O} another key, {CA} the CA that signed the server's host
# certificate (principal 127.0.0.1), {OCA} another CA, {P} the port; "HASH " hashes the line's
# host field with `ssh-keygen -H`.
CASES = [
    ("bracketed", "127.0.0.1", ["[127.0.0.1]:{P} {K}"], "ok", "ok"),
    ("port-less only", "127.0.0.1", ["127.0.0.1 {K}"], "ok", "ok"),
    ("other port", "127.0.0.1", ["[127.0.0.1]:1 {K}"], "new", "new"),
    ("other key", "127.0.0.1", ["[127.0.0.1]:{P} {O}"], "changed", "changed"),
    # a certificate finds no CA under [127.0.0.1]:P ("new", not "changed"), so OpenSSH looks
    # it up port-less, where the certificate's plain key is recorded
    ("other key, right one port-less", "127.0.0.1",
     ["[127.0.0.1]:{P} {O}", "127.0.0.1 {K}"], "changed", "ok"),
    ("other key and right key", "127.0.0.1", ["[127.0.0.1]:{P} {O}", "[127.0.0.1]:{P} {K}"],
     "ok", "ok"),
    ("revoked, port-less line too", "127.0.0.1",
     ["@revoked [127.0.0.1]:{P} {K}", "127.0.0.1 {K}"], "revoked", "revoked"),
    ("revoked port-less, bracketed ok", "127.0.0.1",
     ["@revoked 127.0.0.1 {K}", "[127.0.0.1]:{P} {K}"], "ok", "ok"),
    ("revoked by wildcard", "127.0.0.1", ["@revoked * {K}", "[127.0.0.1]:{P} {K}"],
     "revoked", "revoked"),
    ("localhost, only the address", "localhost", ["[127.0.0.1]:{P} {K}"], "new", "new"),
    ("localhost, address port-less", "localhost", ["127.0.0.1 {K}"], "new", "new"),
    ("localhost by name", "localhost", ["[localhost]:{P} {K}"], "ok", "ok"),
    ("upper-case pattern", "localhost", ["[LOCALHOST]:{P} {K}"], "ok", "ok"),
    ("wildcard", "127.0.0.1", ["[127.0.0.?]:{P},nothing {K}"], "ok", "ok"),
    ("negated", "127.0.0.1", ["[127.0.0.*]:{P},![127.0.0.1]:* {K}"], "new", "new"),
    ("hashed", "127.0.0.1", ["HASH [127.0.0.1]:{P} {K}"], "ok", "ok"),
    ("hashed port-less", "127.0.0.1", ["HASH 127.0.0.1 {K}"], "ok", "ok"),
    ("hashed other name", "127.0.0.1", ["HASH [localhost]:{P} {K}"], "new", "new"),
    ("empty", "127.0.0.1", [], "new", "new"),
    ("CA", "127.0.0.1", ["@cert-authority [127.0.0.1]:{P} {CA}"], "new", "ok"),
    ("CA for all", "127.0.0.1", ["@cert-authority * {CA}"], "new", "ok"),
    ("CA port-less", "127.0.0.1", ["@cert-authority 127.0.0.1 {CA}"], "new", "ok"),
    ("other CA", "127.0.0.1", ["@cert-authority * {OCA}"], "new", "new"),
    ("CA, principal mismatch", "localhost", ["@cert-authority * {CA}"],
     "new", "new: certificate principal mismatch"),
    ("CA, principal mismatch, key known", "localhost",
     ["@cert-authority * {CA}", "[localhost]:{P} {K}"], "ok", "ok"),
    ("CA revoked", "127.0.0.1", ["@cert-authority * {CA}", "@revoked * {CA}"],
     "new", "revoked-ca"),
    ("key known, its CA revoked", "127.0.0.1", ["[127.0.0.1]:{P} {K}", "@revoked * {CA}"],
     "ok", "revoked-ca"),
    ("CA, key revoked", "127.0.0.1", ["@cert-authority * {CA}", "@revoked * {K}"],
     "revoked", "revoked"),
]


def known_hosts_file(world: World, server: Sshd, lines: list[str], path: Path) -> Path:
    values = {**world.keys, "K": " ".join(server.host_key_line.split()[1:3]),
              "P": str(server.port)}
    text = [line.format(**values) for line in lines]
    for i, line in enumerate(text):
        if line.startswith("HASH "):
            one = path.with_suffix(".one")
            one.write_text(line.removeprefix("HASH ") + "\n")
            subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(one)], check=True,
                           capture_output=True)
            text[i] = one.read_text().strip()
    path.write_text("".join(f"{line}\n" for line in text))
    return path


def openssh_verdict(server: Sshd, host: str, known: Path) -> str:
    """What OpenSSH's client decides, from its exit status and messages."""
    done = subprocess.run(
        ["ssh", "-F", "none", "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={known}",
         "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
         "-o", "CheckHostIP=no", "-o", "IdentitiesOnly=yes", "-i", str(server.client_key),
         "-p", str(server.port), f"{server.user}@{host}", "echo ran"],
        capture_output=True, text=True, timeout=30)
    if done.returncode == 0 and done.stdout == "ran\n":
        return "ok"
    for needle, verdict in (("host key is known for", "new"), ("has changed and you", "changed"),
                            ("was revoked and you", "revoked")):
        if needle in done.stderr:
            return verdict
    raise AssertionError(f"ssh said neither: {done.stderr}")


def runner_result(server: Sshd, host: str, known: Path) -> TargetResult:
    target = model.target("t", server.target(host=host, known_hosts=str(known)))
    job = model.job("j", {"queue": "q", "targets": ["t"], "steps": [{"command": "echo ran"}]})

    async def main() -> TargetResult:
        engine = Engine()
        try:
            return (await engine.run(job, {"t": target}, {}, run_id="r", revision="v")
                    ).targets["t"]
        finally:
            await engine.close()
    return asyncio.run(main())


def sentence(verdict: str, host: str, port: int, known: Path) -> str | None:
    """The exact error runner gives for a verdict."""
    kind, _, problem = verdict.partition(": ")
    where, name = f"{host}:{port}", f"[{host}]:{port}"
    cert = f" and its certificate is not valid: {problem}" if problem else ""
    return {
        "ok": None,
        "new": f"t: host key of {where} is not in known_hosts {known} as {name}{cert}; refused "
               f"(check its fingerprint, then add it: ssh-keyscan -p {port} {host} >> {known})",
        "changed": f"t: host key of {where} has CHANGED since it was recorded in known_hosts "
                   f"{known} as {name}; refused (someone may be intercepting; if the host was "
                   "reinstalled, replace its known_hosts entry)",
        "revoked": f"t: the host key of {where} is marked @revoked in known_hosts {known}; "
                   "refused (it must never be trusted again: give the host a new key)",
        "revoked-ca": f"t: the CA that signed the host certificate of {where} is marked @revoked "
                      f"in known_hosts {known}; refused (it must never be trusted again: give "
                      "the host a new key)",
    }[kind]


@pytest.mark.parametrize("which", ["plain", "cert"])
@pytest.mark.parametrize(("host", "lines", "plain", "cert"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_known_hosts_like_openssh(world: World, tmp_path: Path, which: str, host: str,
                                  lines: list[str], plain: str, cert: str) -> None:
    server = world.servers[which]
    expected = plain if which == "plain" else cert
    known = known_hosts_file(world, server, lines, tmp_path / "known_hosts")
    openssh = openssh_verdict(server, host, known)
    assert openssh == expected.split(":")[0].replace("revoked-ca", "revoked"), \
        f"OpenSSH decides {openssh}: the table is wrong"
    t = runner_result(server, host, known)
    assert (t.status, t.error) == ("success" if expected == "ok" else "failed",
                                   sentence(expected, host, server.port, known))
    assert t.stdout == ("ran\n" if expected == "ok" else "")
