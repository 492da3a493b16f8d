"""`runner discover ssh`: hosts that answer SSH, proposed as targets on a new branch of the
configuration repository (never the applied branch); a changed host key exits 1."""

from __future__ import annotations

import asyncio
import getpass
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from runner.cli.base import REPO, _print_problems, branch_value, cli
from runner.config.load import Loaded
from runner.config.model import ConfigSet, Target

if TYPE_CHECKING:
    from runner.discover.scan import Address
    from runner.executor.hostkeys import KnownHosts
    from runner.source import GitSnapshot

REVIEW = ("Before merging, check: each new key's fingerprint on the host itself (ssh-keygen -lf "
          "/etc/ssh/ssh_host_ed25519_key.pub there), since it was learned over the network; "
          "that every address is a host you run; the names and labels; that the workers can "
          "log in (user, key_file).")


@cli.group()
def discover() -> None:
    """Find hosts and propose them as targets, on a branch to review."""


@discover.command("ssh")
@click.argument("specs", nargs=-1, required=True, metavar="CIDR|HOST[:PORT]...")
@click.option("--port", default=22, show_default=True, type=click.IntRange(1, 65535),
              help="The port of addresses that name none.")
@click.option("--user", help="Log in as USER to learn hostname, OS and kernel.")
@click.option("--key", type=click.Path(dir_okay=False), help="The private key of that login.")
@click.option("--concurrency", default=64, show_default=True, type=click.IntRange(1, 1024),
              help="Addresses scanned at once.")
@click.option("--timeout", default=5.0, show_default=True, type=click.FloatRange(0.1, 300),
              help="Seconds for each address, login included.")
@click.option("--branch", callback=branch_value, help="The new branch [discovery/DATE].")
@click.option("--push", is_flag=True, help="Push the branch (remote.pushDefault, else origin).")
@REPO
def ssh(specs: tuple[str, ...], port: int, user: str | None, key: str | None,
        concurrency: int, timeout: float, branch: str | None, push: bool, repo: Path) -> None:
    """Scan CIDRs and hosts for SSH; propose the new ones as targets on a new branch."""
    from runner.config import load as config_load
    from runner.discover import branch as git
    from runner.discover import propose, scan
    from runner.errors import UsageError
    from runner.source import GitSnapshot

    targets = scan.addresses(specs, port)
    who = scan.login(user or getpass.getuser(), key) if user or key else None
    base = git.head(repo)
    if branch is not None and git.exists(repo, branch):
        raise UsageError(f"--branch {branch} exists already; name a new branch")
    snapshot = GitSnapshot(repo, base)
    config = _valid(config_load.load(snapshot), "HEAD")
    current = {p: snapshot.read(p)[0].decode("utf-8", "replace")
               if snapshot.file_error(p) is None else None
               for p in (propose.TARGETS, propose.KNOWN_HOSTS)}
    known = _known(snapshot, config.targets, current[propose.KNOWN_HOSTS])
    if who is not None:
        click.echo(f"logging in as {who.user} to new hosts, trusting the host key each one "
                   "presents now (it is the key this branch records); hosts whose key is "
                   "changed are not logged in to")
    where = propose.configured(config.targets)
    found = asyncio.run(scan.scan(
        targets, known, lambda a: None if propose.at(a) in where else who, concurrency, timeout))
    today = datetime.now(UTC).date().isoformat()
    plan = propose.propose(found, config.targets, today, user, current)
    for line in plan.lines:
        click.echo(line)
    already = plan.keys and git.proposed(repo, propose.KNOWN_HOSTS, plan.keys)
    if not plan.files:
        click.echo("nothing new: no branch made")
    elif already:
        click.echo(f"these hosts are proposed on branch {already} already: no branch made")
    else:
        name = branch or git.free_name(repo, today)
        made = git.commit(repo, base, plan.files, f"discovery: {plan.new} new SSH host(s)\n\n"
                          + "\n".join(plan.lines) + "\n")
        _valid(config_load.load(GitSnapshot(repo, made)), "the proposed commit")
        git.create(repo, name, made)
        click.echo(f"branch {name} ({made[:12]}) adds {plan.new} target(s) to "
                   f"{propose.TARGETS} and their keys to {propose.KNOWN_HOSTS}")
        if push:
            click.echo(f"pushed {name} to {git.push(repo, name)}")
        click.echo(REVIEW)
    if plan.flagged:
        click.echo("a host key differs from the recorded one (CHANGED/REVOKED above)", err=True)
        raise SystemExit(1)


def _valid(loaded: Loaded, what: str) -> ConfigSet:
    if loaded.config is None:
        _print_problems(loaded.problems, "text")
        click.echo(f"error: the configuration at {what} is not valid; no branch made", err=True)
        raise SystemExit(1)
    return loaded.config


def _known(snapshot: GitSnapshot, targets: Mapping[str, Target],
           discovered: str | None) -> Callable[[Address], KnownHosts]:
    """The known_hosts an address's key is checked against: its target's (a repository file
    at HEAD, else a file on this machine, else ~/.ssh/known_hosts), or, for an address no
    target reaches, the discovered hosts' file at HEAD."""
    from runner.config.semantic import repo_known_hosts
    from runner.discover.propose import KNOWN_HOSTS, at, configured
    from runner.executor import hostkeys, known_hosts

    where = configured(targets)

    def known(address: Address) -> KnownHosts:
        name = where.get(at(address))
        if name is None:
            return hostkeys.KnownHosts(KNOWN_HOSTS, known_hosts.parse(discovered or ""))
        path = targets[name].known_hosts
        in_repo = repo_known_hosts(path)
        if in_repo is None:
            return hostkeys.read(os.path.expanduser(path or "~/.ssh/known_hosts"))
        text = (snapshot.read(in_repo)[0].decode("utf-8", "replace")
                if snapshot.file_error(in_repo) is None else "")
        return hostkeys.KnownHosts(in_repo, known_hosts.parse(text))

    return known

