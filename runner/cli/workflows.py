"""Workflow runs from the command line (issue 20): approve or reject an approval node, and
the approvals waiting (shown by `runner status`)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from runner.cli.base import REPO, _app, _fmt, _print_json, cli


@cli.command()
@click.argument("run_id")
@click.argument("node")
@click.option("--reject", is_flag=True, help="Reject instead of approving.")
@click.option("--comment", default=None, help="Why: recorded with the decision.")
@REPO
@_fmt("text", "json")
def approve(run_id: str, node: str, reject: bool, comment: str | None, repo: Path,
            fmt: str) -> None:
    """Approve (or --reject) the approval NODE of workflow run RUN_ID; exit 1 when it is
    not waiting for one."""
    import getpass

    from runner.ops.runs import cli_action
    from runner.ops.workflows import approve as decide

    system, app, config = _app(repo, fmt)
    by = f"{getpass.getuser()} (runner approve)"
    record = decide(system.store, lambda: (app, config), run_id, node, not reject, by, comment,
                    cli_action("reject" if reject else "approve", node=node, comment=comment))
    if fmt == "json":
        _print_json(record.to_json())
    else:
        verb = "rejected" if reject else "approved"
        click.echo(f"run {run_id}: node {node} {verb}; the workflow run is {record.state}")


def approvals(system: Any, config: Any) -> list[dict[str, Any]]:
    """The approvals waiting, as `runner status` shows them (JSON)."""
    from runner.ops.workflows import waiting

    return [{"run_id": a.run_id, "workflow": a.workflow, "node": a.node,
             "question": a.question, "since": a.since, "timeout_at": a.timeout_at}
            for a in waiting(system.store, config)]


def approval_lines(waiting: list[dict[str, Any]]) -> list[str]:
    """`runner status`'s lines of the approvals waiting."""
    lines = [f"approvals waiting: {len(waiting)}"]
    for a in waiting:
        until = (datetime.fromtimestamp(a["timeout_at"], UTC).strftime(" (rejected at "
                 "%Y-%m-%d %H:%M:%S UTC)") if a["timeout_at"] else "")
        lines.append(f"  {a['run_id']} {a['workflow']} node {a['node']}: "
                     f"{a['question']}{until}; runner approve {a['run_id']} {a['node']}")
    return lines
