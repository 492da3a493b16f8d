"""known_hosts.py without a server: which lines match a name (checked against OpenSSH's own
`ssh-keygen -F`), which lines are usable, and the host key algorithm order. The decisions
themselves are checked against `ssh` and real sshds in tests/integration/test_known_hosts.py."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from runner.executor import known_hosts as kh
from tests.servers import keygen

NAMES = ["web1", "web12", "db.example.com", "bad.example.com", "[web1]:2222", "[web1]:22",
         "10.0.0.5", "10.0.0.55", "[10.0.0.5]:2222", "localhost", "[::1]:2222", "::1"]
PATTERNS = ["web1", "web?", "WEB1,db.example.com", "*.example.com,!bad.example.com",
            "!web1,web*", "[web1]:2222", "[web1]:*", "10.0.0.*", "[10.0.0.5]:2222,10.0.0.5",
            "*", "[::1]:2222", "::1"]


def test_matching_agrees_with_ssh_keygen(tmp_path: Path) -> None:
    key = " ".join(keygen(tmp_path / "k").split()[:2])
    plain = [f"{p} {key}" for p in PATTERNS]
    hashed_file = tmp_path / "hashed"
    hashed_file.write_text("".join(f"{n} {key}\n" for n in NAMES))
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(hashed_file)], check=True,
                   capture_output=True)
    lines = plain + hashed_file.read_text().splitlines()
    known = tmp_path / "known_hosts"
    known.write_text("".join(f"{line}\n" for line in lines))
    for name in NAMES:
        found = subprocess.run(["ssh-keygen", "-F", name, "-f", str(known)],
                               capture_output=True, text=True).stdout
        expected = {int(n) for n in re.findall(r"found: line (\d+)", found)}
        ours = {i + 1 for i, line in enumerate(lines)
                if kh.matches(kh.parse(line)[0].hosts, name)}
        assert ours == expected, name


def test_lines_openssh_would_not_use_are_skipped(tmp_path: Path) -> None:
    kind, data = keygen(tmp_path / "k").split()[:2]
    rsa = "AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7"  # cut short: not a whole key
    text = "\n".join([
        f"good {kind} {data} comment",
        f"@revoked revoked {kind} {data}",
        f"@cert-authority *.example.com {kind} {data}",
        f"@bogus h {kind} {data}",
        f"@revoked @revoked h {kind} {data}",
        f"badb64 {kind} !!{data}",
        f"wrongtype ssh-rsa {data}",
        f"short ssh-rsa {rsa}",
        f"truncated {kind}",
        f"  # {kind} {data}",
        f"crlf {kind} {data}\r",
        f"\ttabbed\t{kind}\t{data}",
    ])
    assert [(e.marker, e.hosts) for e in kh.parse(text)] == [
        ("", "good"), ("@revoked", "revoked"), ("@cert-authority", "*.example.com"),
        ("", "tabbed")]


@pytest.mark.parametrize(("host", "port", "name"), [
    ("Web1", 22, "web1"), ("web1", 2222, "[web1]:2222"), ("::1", 22, "::1"),
    ("::1", 2222, "[::1]:2222"), ("web1", 0, "web1")])
def test_lookup_name(host: str, port: int, name: str) -> None:
    assert kh.lookup_name(host, port) == name


def test_algorithms_prefer_the_known_key_types(tmp_path: Path) -> None:
    ed = " ".join(keygen(tmp_path / "ed").split()[:2])
    subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-f", str(tmp_path / "ec")],
                   check=True)
    ec = " ".join((tmp_path / "ec.pub").read_text().split()[:2])
    every = list(kh.OPENSSH_ALGORITHMS)
    assert kh.algorithms(kh.parse(f"[h]:2222 {ed}"), "h", 2222) == every
    assert kh.algorithms(kh.parse(""), "h", 2222) == every
    ecdsa = kh.algorithms(kh.parse(f"[h]:2222 {ec}\nh {ed}"), "h", 2222)
    assert ecdsa[:2] == ["ecdsa-sha2-nistp256-cert-v01@openssh.com", "ecdsa-sha2-nistp256"]
    certs = kh.algorithms(kh.parse(f"@cert-authority * {ec}\n[h]:2222 {ec}"), "h", 2222)
    assert certs[:9] == [a for a in every if "-cert-" in a] + ["ecdsa-sha2-nistp256"]
