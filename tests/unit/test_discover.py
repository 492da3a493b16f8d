"""runner discover's pure parts: the addresses arguments name, the names and entries of new
targets, what configured hosts are reported as."""

from __future__ import annotations

import pytest
import yaml

from runner.config import model
from runner.discover.propose import KNOWN_HOSTS, TARGETS, propose
from runner.discover.scan import Address, Found, addresses
from runner.errors import UsageError

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsvwgZ9h1zWqKGmvUvG4Kdx"


def test_addresses_of_networks_hosts_and_ports_in_order_once_each() -> None:
    assert addresses(["10.0.0.0/30", "10.0.0.1", "db-1:2222", "[fd00::7]:23", "fd00::8"],
                     22) == [Address("10.0.0.1", 22), Address("10.0.0.2", 22),
                             Address("db-1", 2222), Address("fd00::7", 23),
                             Address("fd00::8", 22)]
    assert addresses(["10.0.0.4/31", "10.0.0.9/32"], 2200) == [
        Address("10.0.0.4", 2200), Address("10.0.0.5", 2200), Address("10.0.0.9", 2200)]
    assert len(addresses(["10.1.0.0/16"], 22)) == 65534


@pytest.mark.parametrize("specs", [["10.0.0.0/15"], ["10.1.0.0/16", "10.2.0.0/24"],
                                   ["-oProxyCommand=x"], ["db:0"], ["db:x"]])
def test_too_many_addresses_or_a_malformed_one_is_a_usage_error(specs: list[str]) -> None:
    with pytest.raises(UsageError):
        addresses(specs, 22)


def test_new_targets_are_named_from_hostnames_sanitized_and_unique() -> None:
    found = [Found(Address("10.0.0.7", 22), KEY, "new", "SSH-2.0-OpenSSH_9.6",
                   (("hostname", "Web_1.Example.COM "), ("system", "Linux"),
                    ("kernel", "6.8.0"), ("os", "ubuntu"), ("os_version", "24.04"))),
             Found(Address("10.0.0.8", 2222), KEY, "new",
                   facts=(("hostname", "web_1.example.com"),)),
             Found(Address("fd00::9", 2222), KEY, "new"),
             Found(Address("10.0.0.10", 22), KEY, "new", facts=(("hostname", "--"),))]
    taken = {"web_1.example.com-2": model.target("web_1.example.com-2", {"transport": "local"})}
    plan = propose(found, taken, "2026-12-02", "ops", {TARGETS: None, KNOWN_HOSTS: None})
    targets = yaml.safe_load(plan.files[TARGETS])["targets"]
    assert list(targets) == ["web_1.example.com", "web_1.example.com-3", "fd00-9-2222", "host"]
    assert targets["web_1.example.com"] == {
        "transport": "ssh", "host": "10.0.0.7", "user": "ops", "known_hosts": KNOWN_HOSTS,
        "labels": {"os": "ubuntu", "os_version": "24.04", "discovered": "2026-12-02"},
        "description": "SSH-2.0-OpenSSH_9.6; Linux 6.8.0"}
    assert plan.files[KNOWN_HOSTS].splitlines()[:3] == [
        f"10.0.0.7 {KEY}", f"[10.0.0.8]:2222 {KEY}", f"[fd00::9]:2222 {KEY}"]
    assert (plan.new, plan.flagged) == (4, False)


def test_configured_hosts_are_known_unrecorded_or_flagged_and_never_written() -> None:
    targets = {n: model.target(n, {"host": h, "port": 22}) for n, h in
               (("a", "10.0.0.1"), ("b", "DB.example"), ("c", "10.0.0.3"))}
    found = [Found(Address("10.0.0.1", 22), KEY, "ok"), Found(Address("db.example", 22), KEY,
                                                              "new"),
             Found(Address("10.0.0.3", 22), KEY, "changed"),
             Found(Address("10.0.0.4", 22), error="connection refused")]
    current = {TARGETS: "targets:\n  x: {transport: local}", KNOWN_HOSTS: None}
    plan = propose(found, targets, "2026-12-02", None, current)
    assert plan.files == {} and plan.flagged
    assert [line.split()[:2] for line in plan.lines] == [
        ["known", "a"], ["unrecorded", "b"], ["CHANGED", "c"], ["no", "ssh"]]
    assert f"db.example {KEY}" in plan.lines[1]
