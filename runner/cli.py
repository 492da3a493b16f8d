"""The command line. Exit codes: 0 ok, 1 the checked thing failed, 2 usage or environment error.

Only this module catches RunnerError; it prints the message (never a traceback) and exits.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from runner import __version__, desired
from runner.config import load as config_load
from runner.config.model import ConfigSet
from runner.config.schema import KINDS, schema_text
from runner.errors import ConfigInvalid, Problem, RunnerError, UsageError

F = TypeVar("F", bound=Callable[..., Any])
REPO: Callable[[F], F] = click.option(
    "--repo", default=".", show_default=True, envvar="RUNNER_REPO",
    type=click.Path(file_okay=False, path_type=Path),
    help="The configuration repository (a directory).")


def _fmt(*choices: str) -> Callable[[F], F]:
    return click.option("--format", "fmt", type=click.Choice(choices), default=choices[0],
                        show_default=True, help="Output format.")


def _print_json(value: object) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def _print_problems(problems: tuple[Problem, ...] | list[Problem], fmt: str) -> None:
    if fmt == "json":
        _print_json({"ok": not problems, "errors": [p.as_dict() for p in problems]})
    elif fmt == "github":
        for p in problems:
            message = p.message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
            click.echo(f"::error file={p.file},line={p.line},col={p.column}::{message}")
    else:
        for p in problems:
            click.echo(p.text())
        if problems:
            click.echo(f"{len(problems)} error{'s' if len(problems) != 1 else ''}", err=True)


def _load(repo: Path, cache: bool = True, model_too: bool = True) -> config_load.Loaded:
    from runner.source import DirSnapshot

    snapshot = DirSnapshot(repo)
    if not cache:
        return config_load.load(snapshot, model_too=model_too)
    from runner.config.cache import DiskCache

    disk = DiskCache(repo)
    loaded = config_load.load(snapshot, disk, model_too)
    disk.save()
    return loaded


def _config(repo: Path, fmt: str) -> ConfigSet:
    loaded = _load(repo)
    if loaded.config is None:
        _print_problems(loaded.problems, "json" if fmt == "json" else "text")
        raise SystemExit(1)
    return loaded.config


def _parse_now(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        now = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--now {value!r} is not an ISO 8601 time like "
                         "2026-03-29T00:00:00+01:00") from None
    if now.tzinfo is None:
        raise UsageError(f"--now {value!r} has no UTC offset; add one, like +01:00 or Z")
    return now


class _Group(click.Group):
    """Turns runner's own errors into a message and an exit code: never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigInvalid as e:
            _print_problems(e.problems, "text")
            ctx.exit(e.exit_code)
        except RunnerError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(e.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="runner")
def cli() -> None:
    """runner: jobs, targets and schedules as YAML in git, run by Celery workers."""


@cli.command()
@REPO
@_fmt("text", "json", "github")
@click.option("--no-cache", is_flag=True, help="Do not read or write the per-file cache.")
def validate(repo: Path, fmt: str, no_cache: bool) -> None:
    """Check the configuration: YAML, schema and cross-references. Exit 1 on any error."""
    loaded = _load(repo, cache=not no_cache, model_too=False)
    if loaded.problems or fmt != "text":
        _print_problems(loaded.problems, fmt)
    if loaded.problems:
        raise SystemExit(1)
    if fmt == "text":
        counts = ", ".join(f"{len(loaded.names.get(k, ()))} {k}"
                           for k in ("queues", "workers", "targets", "jobs", "schedules"))
        click.echo(f"ok: {counts}")


@cli.command()
@REPO
@_fmt("text", "json")
@click.option("--now", help="Compute fire times after this ISO 8601 time (default: now).")
@click.option("--count", default=3, show_default=True, type=click.IntRange(1, 1000),
              help="Fire times per schedule.")
def plan(repo: Path, fmt: str, now: str | None, count: int) -> None:
    """Show queues, workers, job routes and each schedule's next fire times."""
    moment = _parse_now(now)
    result = desired.plan(_config(repo, fmt), moment, count)
    if fmt == "json":
        _print_json(result)
        return
    click.echo(f"revision {result['revision']}")
    click.echo("queues (highest priority first):")
    for name, q in result["queues"].items():
        served = ", ".join(q["workers"]) or "no worker"
        click.echo(f"  {name:<24} priority {q['priority']}  served by {served}")
    click.echo("workers:")
    for name, w in result["workers"].items():
        queues = ", ".join(w["queues"])
        click.echo(f"  {name:<24} concurrency {w['concurrency']:<4} queues {queues}")
    click.echo("routes:")
    for job, queue in result["routes"].items():
        click.echo(f"  {job:<32} -> {queue}")
    click.echo(f"schedules (next {count} after {moment.isoformat()}):")
    for name, s in result["schedules"].items():
        click.echo(f"  {name}: job {s['job']} on {s['queue']}, {s['when']} ({s['timezone']}), "
                   f"overlap {s['overlap']}")
        click.echo(f"      {', '.join(s['next']) or 'no future firing'}")


@cli.command()
@click.argument("base")
@click.argument("head", default="HEAD")
@REPO
@_fmt("text", "json")
@click.option("--now", help="Fire times of changed schedules after this time (default: now).")
def diff(base: str, head: str, repo: Path, fmt: str, now: str | None) -> None:
    """Describe what HEAD changes compared with BASE (git revisions), for review."""
    from runner.diff import changes, render
    from runner.source import GitSnapshot

    moment = _parse_now(now)
    after = config_load.load(GitSnapshot(repo, head))
    if after.problems:
        click.echo(f"{head} is invalid:", err=True)
        _print_problems(after.problems, fmt)
        raise SystemExit(1)
    before = config_load.load(GitSnapshot(repo, base))
    found = changes(before.objects, after.objects, moment)
    if fmt == "json":
        _print_json({"base": base, "head": head, "ok": True,
                     "changes": [c.as_dict() for c in found]})
    else:
        for line in render(found):
            click.echo(line)


@cli.command()
@click.argument("job")
@REPO
@click.option("--dry-run", is_flag=True, help="Show the targets and steps; run nothing.")
@click.option("--limit", help="Only targets that also match this selector (NAME, group:G, "
                              "label:K=V; several separated by commas).")
@click.option("--enqueue", is_flag=True, help="Queue the run for the workers; print its id.")
@click.option("--wait", is_flag=True, help="With --enqueue: follow the run to its end.")
@_fmt("text", "json")
def run(job: str, repo: Path, dry_run: bool, limit: str | None, enqueue: bool, wait: bool,
        fmt: str) -> None:
    """Run JOB on its targets now, in this process (or --enqueue it for the workers).
    Exit 1 if any target did not succeed."""
    if wait and not enqueue:
        raise UsageError("--wait follows a queued run; use it with --enqueue")
    if enqueue:
        _enqueue(job, repo, limit, wait, fmt)
        return
    if dry_run:
        from runner.dryrun import describe, render

        result = describe(_config(repo, fmt), job, limit)
        if fmt == "json":
            _print_json(result)
        else:
            for line in render(result):
                click.echo(line)
        return
    import sys

    from runner import progress
    from runner.execute import relative, run_now, save_downloads
    from runner.settings import Settings
    from runner.source import DirSnapshot

    settings = Settings.from_env()
    config = _config(repo, fmt)
    from runner.dryrun import lookup, select

    total = len(select(config, lookup(config, job), limit))
    view = (progress.Live(total) if fmt == "text" and sys.stderr.isatty()
            else progress.Plain(total))
    with view:
        done = run_now(config, DirSnapshot(repo), job, limit, settings, view)
    saved = save_downloads(done, repo / ".runner" / "downloads")
    if fmt == "json":
        out = done.as_dict()
        for name, t in out["targets"].items():
            for d in t["downloads"]:
                d["saved"] = relative(saved[(name, d["src"])])
        _print_json(out)
    else:
        for line in progress.report(done, {k: relative(v) for k, v in saved.items()}):
            click.echo(line)
    if done.status != "success":
        raise SystemExit(1)


def _system(repo: Path) -> Any:
    from runner.celery_app import System
    from runner.settings import Settings

    return System(Settings.from_env(), repo, repo / ".runner")


def _app(repo: Path, fmt: str = "text") -> tuple[Any, Any, ConfigSet]:
    from runner.celery_app import create_app

    system = _system(repo)
    config = system.applied() or _config(repo, fmt)
    return system, create_app(system, config), config


def _record_lines(r: dict[str, Any]) -> list[str]:
    took = (f"{r['finished'] - r['started']:.2f}s" if r.get("finished") and r.get("started")
            else "-")
    created = datetime.fromtimestamp(r.get("created", 0), UTC).strftime("%Y-%m-%d %H:%M:%S")
    lines = [f"{r['run_id']}  {created}  {r.get('job', '?'):<20} {r.get('state', '?'):<9} "
             f"{took:>8}  {r.get('trigger', '')}"]
    if r.get("error"):
        lines.append(f"    {r['error']}")
    return lines


def _finish(record: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        _print_json(record)
    else:
        for line in _record_lines(record):
            click.echo(line)
        for name, t in (record.get("result") or {}).get("targets", {}).items():
            click.echo(f"    {t['status']:<9} {name}" + (f": {t['error']}" if t["error"] else ""))
    if record.get("state") != "SUCCESS":
        raise SystemExit(1)


def _enqueue(job: str, repo: Path, limit: str | None, wait: bool, fmt: str) -> None:
    from runner import tasks

    system, app, config = _app(repo, fmt)
    run_id = tasks.enqueue(app, system.store, config, job, "cli", limit)
    if not wait:
        _print_json({"run_id": run_id, "state": "PENDING"}) if fmt == "json" else click.echo(
            run_id)
        return
    if fmt == "text":
        click.echo(f"run {run_id} queued; waiting for it to end (Ctrl-C stops waiting, not "
                   "the run)", err=True)
    _finish(tasks.wait(system.store, run_id), fmt)


@cli.command()
@click.argument("name")
@REPO
@click.option("--concurrency", type=click.IntRange(1, 1024),
              help="Runs at once in this process (default: the worker's in queues.yaml).")
def worker(name: str, repo: Path, concurrency: int | None) -> None:
    """Start a Celery worker serving the queues queues.yaml assigns to NAME."""
    import socket

    from runner.celery_app import worker_hostname
    from runner.tasks import sweep_orphans
    from runner.worker import install

    system, app, config = _app(repo)
    if not system.settings.redis_url:
        for run_id in sweep_orphans(system.store, socket.gethostname()):
            click.echo(f"run {run_id}: its worker died mid-run; marked FAILURE", err=True)
    w = config.workers.get(name)
    if w is None:
        from runner.config.schema import did_you_mean

        raise UsageError(f"there is no worker {name!r}{did_you_mean(name, config.workers)} in "
                         f"queues.yaml (workers: {', '.join(config.workers) or 'none'})")
    install(app, system, name, concurrency)  # hot reload of its queues and concurrency
    code: object = 0
    try:
        app.worker_main(["worker", "-Q", ",".join(w.queues), "-n", worker_hostname(name),
                         "-c", str(concurrency or w.concurrency), "-P", "prefork",
                         "--loglevel", "INFO", "--without-mingle", "--without-gossip"])
    except SystemExit as e:
        code = e.code
    # The worker has shut down (its runs finished or were handed back). Skip the interpreter's
    # exit handlers: billiard's pool finalizer takes the pool's queue lock, which a pool process
    # killed by a SIGTERM sent to the whole process group (systemd's default stop) may have
    # held — the embedded (threaded) pool then hung forever.
    import logging
    import os
    import sys

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0 if code is None else code if isinstance(code, int) else 1)


@cli.command()
@REPO
@click.option("--bind", default="127.0.0.1:8080", show_default=True,
              help="HOST:PORT to listen on (localhost unless told otherwise).")
def api(repo: Path, bind: str) -> None:
    """Serve the REST API, live events, Prometheus metrics and the dashboard."""
    from runner.api import serve

    serve(_system(repo), bind)


@cli.command()
@REPO
def beat(repo: Path) -> None:
    """Fire the schedules (one active beat at a time; others stand by)."""
    import signal
    import threading

    from runner.beat import Beat

    system, app, _config_set = _app(repo)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    click.echo(f"beat {system.settings.redis_url or 'embedded'}: firing schedules of {repo}",
               err=True)
    Beat(system, app).run(stop)


@cli.command()
@REPO
@click.option("--source", help="What the reconciler watches (default: --repo, when it is a git "
                              "repository).")
@click.option("--branch", help="The branch to apply (default: the repository's current one).")
@click.option("--report-branch", default="reports", show_default=True,
              help="The branch each finished run is committed to.")
@click.option("--api-bind", default="127.0.0.1:8080", show_default=True,
              help="Where `runner api` (dashboard, REST, events, metrics) listens.")
def up(repo: Path, source: str | None, branch: str | None, report_branch: str,
       api_bind: str) -> None:
    """Start the reconciler, beat, every worker of queues.yaml, the report publisher and the
    API, and keep them running (following the configuration); Ctrl-C or SIGTERM stops them
    all."""
    import logging
    import signal
    import threading

    from runner.api import parse_bind
    from runner.up import Plan, serve

    parse_bind(api_bind, "--api-bind")  # a usage error now, not a child failing for ever
    system = _system(repo)
    config = system.applied() or _config(repo, "text")
    watched = source or (str(repo.resolve()) if _refs_dir(str(repo)) else None)
    branch = branch or (_current_branch(watched) if watched else "main")
    where = system.settings.redis_url or f"embedded, state in {repo / '.runner'}"
    click.echo(f"runner up ({where}): "
               f"{f'reconciler of {watched} {branch}, ' if watched else ''}"
               f"beat, api on {api_bind} and workers {', '.join(config.workers)}"
               f"{f', report publisher to branch {report_branch}' if watched else ''}", err=True)
    logging.basicConfig(format="%(message)s")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    serve(system, Plan(repo, watched, branch, report_branch, source, api_bind), stop)


@cli.command()
@REPO
@click.option("--once", "mode", flag_value="once", default=True,
              help="Reconcile once and exit (the default): 0 applied or unchanged, 1 the "
                   "revision is invalid, 2 the source cannot be fetched.")
@click.option("--watch", "mode", flag_value="watch",
              help="Reconcile every --interval until Ctrl-C.")
@click.option("--source", help="A git URL or a local repository (default: --repo itself).")
@click.option("--branch", default="main", show_default=True, help="The branch to apply.")
@click.option("--interval", default="30s", show_default=True,
              help="With --watch: time between fetches (30s, 1m, ...).")
@click.option("--require-signed", type=click.Path(exists=True, path_type=Path),
              help="Apply only revisions whose head commit is signed by a key of this keyring: "
                   "an SSH allowed_signers file or a GnuPG home directory.")
def reconcile(repo: Path, mode: str, source: str | None, branch: str, interval: str,
              require_signed: Path | None) -> None:
    """Fetch the source, validate its branch and apply it if valid; record the outcome."""
    import signal
    import threading

    from runner.config.cache import DiskCache
    from runner.config.model import seconds
    from runner.reconcile import reconcile as run_once

    try:
        every = seconds(int(interval) if interval.isdigit() else interval)
    except ValueError:
        raise UsageError(f"--interval {interval!r} is not a duration like 30s or 1m") from None
    system = _system(repo)
    where = source or str(repo.resolve())
    mirror = system.state_dir / "source.git"
    cache = DiskCache(mirror)

    def once() -> int:
        outcome = run_once(system.store, where, branch, mirror, cache, require_signed)
        cache.save()
        if outcome.problems:
            _print_problems(outcome.problems, "text")
        if outcome.reason:
            click.echo(f"error: {outcome.reason}", err=True)
            return 2 if outcome.revision is None else 1
        what = "applied" if outcome.changed else "unchanged"
        click.echo(f"{branch} at {str(outcome.revision)[:12]}: {what}")
        return 0

    if mode == "once":
        raise SystemExit(once())
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def settle() -> None:  # a failed fetch is tried again soon (1 s, 2 s, ...), not in --interval
        delay = 1.0
        while once() == 2 and delay < every and not stop.wait(delay):
            delay *= 2

    settle()
    refs = _refs_dir(where)
    if refs is None:  # a remote: poll
        while not stop.wait(every):
            settle()
        return
    import watchfiles  # a local repository: a commit or push changes its refs; act at once

    def ours(_change: object, path: str) -> bool:  # the branch's ref, not the report branch's
        return path.endswith(f"/heads/{branch}")

    for _changes in watchfiles.watch(refs, watch_filter=ours, debounce=100, step=20,
                                     rust_timeout=int(every * 1000), yield_on_timeout=True,
                                     stop_event=stop, raise_interrupt=False):
        settle()


def _current_branch(source: str) -> str:
    import subprocess

    done = subprocess.run(["git", "-C", source, "symbolic-ref", "--short", "HEAD"],
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() or "main"


def _refs_dir(source: str) -> Path | None:
    """The refs directory of a local repository (worktree or bare), else None."""
    path = Path(source)
    for git_dir in (path / ".git", path):
        if (git_dir / "refs").is_dir() and (git_dir / "HEAD").exists():
            return git_dir / "refs"
    return None


@cli.command()
@REPO
@click.option("--once", "mode", flag_value="once", default=True,
              help="Commit every finished run not yet committed, push, exit (the default).")
@click.option("--watch", "mode", flag_value="watch",
              help="Keep committing runs as they finish until Ctrl-C (what runner up runs).")
@click.option("--source", help="The configuration's source when it is not --repo (its mirror "
                              "under .runner/source.git holds the branch; pushed to SOURCE).")
@click.option("--report-branch", default="reports", show_default=True,
              help="The branch runs are committed to.")
@click.option("--batch", default=500, show_default=True, type=click.IntRange(1, 100000),
              help="Runs taken off the store per checkpoint.")
def publish(repo: Path, mode: str, source: str | None, report_branch: str, batch: int) -> None:
    """Commit finished runs to the report branch and push it (the one writer)."""
    import logging
    import signal
    import threading

    from runner import publish as pub

    system = _system(repo)
    git_dir, remote = pub.locate(repo, system.state_dir, source)
    publisher = pub.Publisher(git_dir, report_branch, remote)
    stop = threading.Event()
    if mode == "watch":
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        click.echo(f"publisher: runs to {report_branch} of {git_dir}"
                   f"{f', pushed to {remote}' if remote else ''}", err=True)
    try:
        pub.serve(system.store, publisher, stop, pub.keep_days_of(system.config), batch,
                  once=mode == "once", keep_runs=system.settings.keep_runs)
    finally:
        publisher.close()
    if mode == "once":
        s = system.store.get(pub.STATUS) or {}
        click.echo(f"{report_branch} at {str(s.get('head'))[:12]}; unpushed {s.get('unpushed')}")


@cli.command()
@REPO
@_fmt("text", "json")
def status(repo: Path, fmt: str) -> None:
    """Workers alive and their queues, queue lengths, active runs."""
    from runner.celery_app import queue_length
    from runner.state import ACTIVE

    system, app, config = _app(repo, fmt)
    inspect = app.control.inspect(timeout=1.0)
    queues = inspect.active_queues() or {}
    active = inspect.active() or {}
    rec = system.store.get("reconcile") or {}
    out: dict[str, Any] = {
        "applied_revision": rec.get("applied_revision"),
        "attempted_revision": rec.get("attempted_revision"),
        "errors": rec.get("errors", []), "last_reconcile": rec.get("last_reconcile"),
        "fetch_error": rec.get("fetch_error"), "refused": rec.get("refused"),
        "suspended": system.store.get("suspended") or {},
        "broker": "redis" if system.settings.redis_url else "embedded",
        "workers": {host: {"queues": sorted(q["name"] for q in qs),
                           "active": len(active.get(host, [])),
                           "revision": (system.store.get(f"worker:{host}") or {}).get("revision")}
                    for host, qs in sorted(queues.items())},
        "beat": system.store.get("beat"),
        "queues": {q: {"length": queue_length(system, q), "priority": config.queues[q].priority}
                   for q in config.queues},
        "active_runs": [r for r in system.store.runs(limit=200) if r.get("state") in ACTIVE],
        "schedules": _schedules(system, config),
        "reports": {k: v for k, v in (system.store.get("reports") or {}).items()
                    if k in ("branch", "head", "unpushed", "last_error", "remote")},
    }
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
    paused = out["suspended"]
    if paused.get("all") or paused.get("schedules"):
        click.echo("suspended: " + ("all schedules" if paused.get("all") else
                                    ", ".join(sorted(paused["schedules"]))))
    click.echo(f"broker: {out['broker']}")
    click.echo("workers:" if out["workers"] else "workers: none answering")
    for host, w in out["workers"].items():
        click.echo(f"  {host:<40} queues {', '.join(w['queues'])}  active {w['active']}")
    click.echo("queues:")
    for q, info in out["queues"].items():
        click.echo(f"  {q:<24} {info['length']} waiting, priority {info['priority']}")
    click.echo("schedules:")
    for name, sch in out["schedules"].items():
        click.echo(f"  {name:<24} next {sch['next_fire'] or '-'}  last {sch['last_fire'] or '-'}"
                   f"  run {sch['last_run_id'] or '-'}")
    rep = out["reports"]
    if rep:
        click.echo(f"reports: {rep.get('branch')} at {str(rep.get('head'))[:12]}, "
                   f"{rep.get('unpushed')} unpushed"
                   + (f"; last push failed: {rep['last_error']}" if rep.get("last_error")
                      else ""))
    click.echo(f"active runs: {len(out['active_runs'])}")
    for r in out["active_runs"]:
        for line in _record_lines(r):
            click.echo(f"  {line}")


def _schedules(system: Any, config: ConfigSet) -> dict[str, dict[str, Any]]:
    """Each schedule's next firing (from now), last handled firing and last run id."""
    from runner.overview import schedules

    keep = ("job", "next_fire", "last_fire", "last_run_id")
    return {name: {k: s[k] for k in keep} for name, s in schedules(system.store, config).items()}


@cli.command()
@click.argument("job", required=False)
@REPO
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10000),
              help="Newest runs to show.")
@click.option("--report-branch", default="reports", show_default=True,
              help="Where to look for runs the store no longer holds.")
@_fmt("text", "json")
def history(job: str | None, repo: Path, limit: int, report_branch: str, fmt: str) -> None:
    """Recent runs (of JOB), newest first: id, time, job, state, duration, trigger.
    JOB may be a run id: that run. Runs gone from the store are read from the report branch."""
    from runner.report import created_of

    system = _system(repo)
    if job and created_of(job) is not None:
        record = system.store.run(job) or _from_reports(system, report_branch, run_id=job)
        if record is None:
            raise UsageError(f"there is no run {job!r} in the store or on {report_branch}")
        runs = [record]
    else:
        runs = system.store.runs(job, limit)
        if not runs and job:
            runs = [r for r in [_from_reports(system, report_branch, job=job)] if r]
    if fmt == "json":
        _print_json({"runs": runs})
        return
    for r in runs:
        for line in _record_lines(r):
            click.echo(line)


def _from_reports(system: Any, branch: str, run_id: str | None = None,
                  job: str | None = None) -> dict[str, Any] | None:
    """A run from the report branch (by id, or the latest of `job`), or None."""
    from runner import publish as pub

    rec = system.store.get(pub.STATUS) or {}
    try:
        git_dir = Path(rec["git_dir"]) if rec.get("git_dir") else pub.locate(
            system.repo, system.state_dir, None)[0]
    except RunnerError:
        return None
    if run_id:
        return pub.read_run(git_dir, branch, run_id)
    return pub.read_latest(git_dir, branch, str(job))


def _suspension(repo: Path, schedule: str | None, every: bool, suspend: bool,
                fmt: str) -> None:
    import getpass
    import time

    from runner.beat import SUSPENDED

    if bool(schedule) == every:
        raise UsageError("name one SCHEDULE or pass --all")
    system = _system(repo)
    paused = system.store.get(SUSPENDED) or {}
    named = paused.setdefault("schedules", {})
    if schedule and suspend:
        config = system.applied() or _config(repo, fmt)
        if schedule not in config.schedules:
            from runner.config.schema import did_you_mean

            raise UsageError(f"there is no schedule {schedule!r}"
                             f"{did_you_mean(schedule, config.schedules)}")
    mark = {"by": getpass.getuser(), "at": time.time()}
    if every:
        if suspend:
            paused["all"] = mark
        else:
            paused.pop("all", None)
            named.clear()
    elif suspend:
        named[str(schedule)] = mark
    else:
        named.pop(str(schedule), None)
    system.store.put(SUSPENDED, paused)
    if fmt == "json":
        _print_json(paused)
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
    from runner import tasks

    system, app, _config_set = _app(repo, fmt)
    record = tasks.cancel(app, system.store, run_id)
    if fmt == "json":
        _print_json(record)
    else:
        click.echo(f"run {run_id}: cancel requested (was {record.get('state')})")


@cli.command(name="retry")
@click.argument("run_id")
@REPO
@_fmt("text", "json")
def retry_run(run_id: str, repo: Path, fmt: str) -> None:
    """Queue a new run of the same job (and limit) as RUN_ID, linked to it."""
    from runner import tasks

    system, app, config = _app(repo, fmt)
    new = tasks.retry(app, system.store, config, run_id)
    _print_json({"run_id": new, "retry_of": run_id}) if fmt == "json" else click.echo(new)


@cli.command()
@click.argument("directory", default="schemas", type=click.Path(file_okay=False, path_type=Path))
def schema(directory: Path) -> None:
    """Write the JSON Schemas (one per kind) into DIRECTORY, for editors."""
    directory.mkdir(parents=True, exist_ok=True)
    for kind in KINDS:
        target = directory / f"{kind}.schema.json"
        if not (target.exists() and target.read_text("utf-8") == schema_text(kind)):
            target.write_text(schema_text(kind), "utf-8")
        click.echo(str(target))


def main() -> None:
    cli.main(prog_name="runner")
