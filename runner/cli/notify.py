"""`runner notify test CHANNEL`: one message to a channel of notifications.yaml, now."""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

from runner.cli.base import REPO, _system, cli


@cli.group()
def notify() -> None:
    """Notifications of notifications.yaml."""


@notify.command("test")
@REPO
@click.argument("channel")
def test(repo: Path, channel: str) -> None:
    """Send a test message to CHANNEL; exit 1 when it cannot be delivered, saying why."""
    from runner.errors import NotifyError, TargetError, UsageError
    from runner.executor.secrets import config_secret
    from runner.notify.events import message
    from runner.notify.send import send
    from runner.runs import RunRecord, RunState, new_run_id

    system = _system(repo)
    config = system.config()
    found = config.notifications.channels.get(channel)
    if found is None:
        names = ", ".join(sorted(config.notifications.channels)) or "none"
        raise UsageError(f"no channel {channel!r} in notifications.yaml (channels: {names})")
    record = RunRecord(new_run_id(), job="runner-notify-test", state=RunState.SUCCESS,
                       revision=config.revision, finished=time.time())
    try:
        url = config_secret(found.url, f"channel {channel}", os.environ, system.settings)
        send(found, url, message(record, "test", system.settings.public_url),
             system.settings.notify_timeout)
    except (NotifyError, TargetError) as e:
        click.echo(f"error: {e}", err=True)
        raise SystemExit(1) from None
    click.echo(f"sent a test message to {channel} ({found.kind})")
