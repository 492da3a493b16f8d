"""What runs and ran, and control: status, history, suspend, resume, cancel, retry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from runner.cli.base import (
    REPO,
    _app,
    _config,
    _fmt,
    _parse_now,
    _print_json,
    _record_lines,
    _system,
    branch_value,
    cli,
)
from runner.cli.workflows import approval_lines, approvals
from runner.config.model import ConfigSet
from runner.errors import Problem, UsageError
from runner.runs import RunRecord


def _runs(config: ConfigSet, name: str, sch: dict[str, Any]) -> dict[str, Any]:
    """A status schedule entry saying "workflow": NAME instead of "job" when it runs one."""
    s = config.schedules.get(name)
    if s is None or not s.workflow:
        return sch
    return {**{k: v for k, v in sch.items() if k != "job"}, "workflow": s.job}


@cli.command()
@REPO
@_fmt("text", "json")
def status(repo: Path, fmt: str) -> None:
    """Workers alive and their queues, queue lengths, active runs."""
    from runner.notify.refused import notice
    from runner.ops.status import detail

    system, app, config = _app(repo, fmt)
    d = detail(system, app, config)
    rev = d.status.revisions
    out: dict[str, Any] = {
        **{k: rev[k] for k in ("applied_revision", "attempted_revision", "errors",
                               "last_reconcile", "fetch_error", "refused")},
        "suspended": d.status.suspended, "broker": d.status.broker, "workers": d.workers,
        "beat": d.status.beat, "queues": d.queues, "active_runs": d.active_runs,
        "schedules": {n: _runs(config, n, s) for n, s in d.schedules.items()},
        "reports": d.status.reports, "wiped": d.wiped,
        "lateness": d.lateness, "limits": d.limits,
        "refusal": notice(system.store, rev["attempted_revision"]),
    }
    out["approvals"] = approvals(system, config)
    if fmt == "json":
        _print_json(out)
        return
    click.echo(f"applied revision: {out['applied_revision'] or 'none (runner reconcile)'}"
               f"; attempted: {out['attempted_revision'] or '-'}")
    for e in out["errors"]:
        click.echo(f"  {Problem(**e).text()}")
    for why in (out["fetch_error"], out["refused"]):
        if why:
            click.echo(f"  {why}")
    if out["refusal"]:  # the `refused` notifications of the attempted revision
        tries = [f"{t['channel']} {t['status']}" for t in out["refusal"]["notifications"]]
        click.echo(f"  refused notice: {', '.join(tries) or 'not sent yet'}")
    paused = out["suspended"]
    if paused.get("all") or paused.get("schedules"):
        click.echo("suspended: " + ("all schedules" if paused.get("all") else
                                    ", ".join(sorted(paused["schedules"]))))
    if out["wiped"]:
        click.echo(f"warning: {out['wiped']}")
    click.echo(f"broker: {out['broker']}")
    click.echo("workers:" if out["workers"] else "workers: none answering")
    for host, w in out["workers"].items():
        click.echo(f"  {host:<40} queues {', '.join(w['queues'])}  active {w['active']}")
    click.echo("queues:")
    for q, info in out["queues"].items():
        click.echo(f"  {q:<24} {info['length']} waiting, priority {info['priority']}")
    click.echo("schedules:")
    for name, sch in out["schedules"].items():
        flow = f"  workflow {sch['workflow']}" if "workflow" in sch else ""
        click.echo(f"  {name:<24} next {sch['next_fire'] or '-'}  last {sch['last_fire'] or '-'}"
                   f"  run {sch['last_run_id'] or '-'}{flow}")
    click.echo(f"lateness: {_lateness_text(out['lateness'])}")
    rep = out["reports"]
    if rep:
        pushed = (f"{rep.get('unpushed')} unpushed to {rep['remote']}" if rep.get("remote")
                  else "kept local (no --push)")
        click.echo(f"reports: {rep.get('branch')} at {str(rep.get('head'))[:12]}, {pushed}"
                   + (f"; last push failed: {rep['last_error']}" if rep.get("last_error")
                      else ""))
    for name, lim in out["limits"].items():
        click.echo(f"limit {name}: {len(lim['held'])}/{lim['max']} held"
                   + "".join(f"\n  {w}" for w in _holders(lim)))
    click.echo(f"active runs: {len(out['active_runs'])}")
    for r in out["active_runs"]:
        for line in _record_lines(RunRecord.from_json(r)):
            click.echo(f"  {line}")
    for line in approval_lines(out["approvals"]) if out["approvals"] else ():
        click.echo(line)


def _holders(lim: dict[str, Any]) -> list[str]:
    """A limit's holders, then its waiters, oldest first: one line each."""
    return [f"{what} run {e['run_id']}" + (f" on {e['target']}" if e["target"] else "")
            + f" ({e['worker']})" for what, key in (("holds", "held"), ("waits", "waiting"))
            for e in lim[key]]


def _lateness_text(late: dict[str, Any]) -> str:
    """One line of the firing-lateness histogram: count, estimated p50/p99, the last."""
    if not late["count"]:
        return "no firing queued yet"
    return (f"{late['count']} firings, p50 {late['p50']}s, p99 {late['p99']}s (estimated), "
            f"last {late['last']:.3f}s late")


@cli.command()
@click.argument("job", required=False)
@REPO
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10000),
              help="Newest runs to show.")
@click.option("--report-branch", default="reports", show_default=True,
              callback=branch_value,
              help="Where to look for runs the store no longer holds.")
@_fmt("text", "json")
def history(job: str | None, repo: Path, limit: int, report_branch: str, fmt: str) -> None:
    """Recent runs (of JOB), newest first: id, time, job, state, duration, trigger.
    JOB may be a run id: that run. Runs gone from the store are read from the report branch."""
    from runner.ops.runs import history as runs_of

    runs = list(runs_of(_system(repo), job, limit, report_branch).runs)
    if fmt == "json":
        _print_json({"runs": [r.to_json() for r in runs]})
        return
    for r in runs:
        for line in _record_lines(r):
            click.echo(line)


def _suspension(repo: Path, schedule: str | None, every: bool, suspend: bool,
                fmt: str) -> None:
    import getpass

    from runner.ops import suspend as pausing

    if bool(schedule) == every:
        raise UsageError("name one SCHEDULE or pass --all")
    system, one = _system(repo), None if every else schedule
    if suspend:
        config = (system.applied() or _config(repo, fmt)) if one else None
        paused = pausing.suspend(system.store, getpass.getuser(), one, config)
    else:
        paused = pausing.resume(system.store, one)
    if fmt == "json":
        _print_json(paused.entry)
    else:
        which = "all schedules" if every else f"schedule {schedule}"
        click.echo(f"{which} {'suspended' if suspend else 'resumed'}")


@cli.command()
@click.argument("schedule", required=False)
@click.option("--all", "every", is_flag=True, help="Every schedule.")
@REPO
@_fmt("text", "json")
def suspend(schedule: str | None, every: bool, repo: Path, fmt: str) -> None:
    """Pause firing of SCHEDULE (or --all) without a commit, e.g. during an incident."""
    _suspension(repo, schedule, every, True, fmt)


@cli.command()
@click.argument("schedule", required=False)
@click.option("--all", "every", is_flag=True, help="Every schedule (and forget single ones).")
@REPO
@_fmt("text", "json")
def resume(schedule: str | None, every: bool, repo: Path, fmt: str) -> None:
    """Let SCHEDULE (or --all) fire again; firings while suspended are not made up."""
    _suspension(repo, schedule, every, False, fmt)


@cli.command(name="cancel")
@click.argument("run_id")
@REPO
@_fmt("text", "json")
def cancel_run(run_id: str, repo: Path, fmt: str) -> None:
    """Cancel a run: a queued one never starts; a running one stops its targets."""
    import getpass

    from runner.ops.runs import cancel, cli_action

    system, app, config = _app(repo, fmt)
    record = cancel(lambda: (app, config), system.store, run_id,
                    f"runner cancel (user {getpass.getuser()})", cli_action("cancel")).record
    if fmt == "json":
        _print_json(record.to_json())
    else:
        click.echo(f"run {run_id}: cancel requested (was {record.state})")


@cli.command()
@click.argument("schedule")
@click.option("--from", "start", required=True, help="First instant (ISO 8601, with offset).")
@click.option("--to", "end", required=True, help="Last instant (ISO 8601, with offset).")
@click.option("--dry-run", is_flag=True, help="List the firings; queue nothing.")
@click.option("--yes", is_flag=True, help="Queue more than 1000 firings (up to 100,000).")
@REPO
@_fmt("text", "json")
def backfill(schedule: str, start: str, end: str, dry_run: bool, yes: bool, repo: Path,
             fmt: str) -> None:
    """Queue one run per firing of SCHEDULE from --from to --to (trigger `backfill`)."""
    from runner.backfill import firings
    from runner.celery import tasks
    from runner.ops.runs import enqueue

    system, app, config = _app(repo, fmt)
    s = config.schedules.get(schedule)
    if s is None:
        raise UsageError(f"there is no schedule {schedule!r}; runner plan lists them")
    due = firings(s, _parse_now(start, "--from"), _parse_now(end, "--to"), yes)
    if s.overlap == "replace":
        due = due[-1:]  # each run would cancel the one before it: only the latest runs
    runs: list[str] = []
    for at in [] if dry_run else due:
        if s.overlap == "forbid" and runs:
            tasks.wait(system.store, runs[-1])  # one at a time
        runs.append(enqueue(app, system.store, config, s.job, "backfill", s.limit,
                            schedule=s.name, scheduled_for=at.isoformat(),
                            params=dict(s.params)).run_id)
        if fmt == "text":
            click.echo(f"{at.isoformat()}  {runs[-1]}")
    if fmt == "json":
        _print_json({"schedule": s.name, "job": s.job, "overlap": s.overlap,
                     "dry_run": dry_run, "firings": [f.isoformat() for f in due],
                     "runs": runs})
    elif dry_run:
        for at in due:
            click.echo(at.isoformat())
        click.echo(f"{len(due)} firing(s) of {s.name} (overlap {s.overlap}); none queued")
    else:
        click.echo(f"{len(runs)} run(s) of {s.job} queued for schedule {s.name}")


@cli.command(name="retry")
@click.argument("run_id")
@REPO
@_fmt("text", "json")
def retry_run(run_id: str, repo: Path, fmt: str) -> None:
    """Queue a new run of the same job (and limit) as RUN_ID, linked to it."""
    from runner.ops.runs import cli_action, retry

    system, app, config = _app(repo, fmt)
    new = retry(lambda: (app, config), system.store, run_id, cli_action("retry", of=run_id)).run_id
    _print_json({"run_id": new, "retry_of": run_id}) if fmt == "json" else click.echo(new)
