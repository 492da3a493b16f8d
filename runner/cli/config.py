"""Commands on the configuration: validate, plan, diff, run, schema."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from runner import desired
from runner.cli.base import (
    REPO,
    _app,
    _config,
    _finish,
    _fmt,
    _load,
    _parse_now,
    _print_json,
    _print_problems,
    cli,
)
from runner.config import load as config_load
from runner.config.schema import KINDS, schema_text
from runner.errors import UsageError

if TYPE_CHECKING:
    from runner.config.model import ConfigSet


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
        counts = ", ".join(_count(len(loaded.names.get(k, ())), k)
                           for k in ("queues", "workers", "targets", "jobs", "schedules",
                                     "workflows"))
        click.echo(f"ok: {counts}")


def _count(n: int, plural: str) -> str:
    """`1 workflow`, `2 workflows`."""
    return f"{n} {plural if n != 1 else plural[:-1]}"


@cli.command()
@REPO
@_fmt("text", "json", "celery")
@click.option("--now", help="Compute fire times after this ISO 8601 time (default: now).")
@click.option("--count", default=3, show_default=True, type=click.IntRange(1, 1000),
              help="Fire times per schedule.")
def plan(repo: Path, fmt: str, now: str | None, count: int) -> None:
    """Show queues, workers, job routes and each schedule's next fire times; `--format
    celery`: the same as a Celery configuration module (task_queues, task_routes,
    beat_schedule)."""
    moment = _parse_now(now)
    config = _config(repo, fmt)
    if fmt == "celery":
        from dataclasses import replace

        from runner.celery.export import module

        # a workflow run starts from the record its enqueuer writes, which Celery's beat does not
        jobs_only = {n: s for n, s in config.schedules.items() if not s.workflow}
        click.echo(module(replace(config, schedules=jobs_only)), nl=False)
        return
    result = desired.plan(config, moment, count)
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
        jitter = (f", jitter {desired.duration_text(s['jitter'])} "
                  f"(+{desired.duration_text(s['jitter_offset'])})" if s["jitter"] else "")
        what = f"workflow {s['workflow']}" if "workflow" in s else \
            f"job {s['job']} on {s['queue']}"
        click.echo(f"  {name}: {what}, {s['when']} ({s['timezone']}), "
                   f"overlap {s['overlap']}{jitter}")
        click.echo(f"      {', '.join(s['next']) or 'no future firing'}")
    click.echo("workflows:" if result["workflows"] else "workflows: none")
    for name, w in result["workflows"].items():
        click.echo(f"  {name}: {len(w['nodes'])} nodes{', ' if w['description'] else ''}"
                   f"{w['description']}")
        for node, n in w["nodes"].items():
            click.echo(f"    {node}: {desired.node_text(n)}")


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
@click.option("-p", "--param", "given", multiple=True, metavar="NAME=VALUE",
              help="A value for one of the job's params (repeatable); steps get it as "
                   "RUNNER_PARAM_<NAME>.")
@_fmt("text", "json")
def run(job: str, repo: Path, dry_run: bool, limit: str | None, enqueue: bool, wait: bool,
        given: tuple[str, ...], fmt: str) -> None:
    """Run JOB on its targets now, in this process (or --enqueue it for the workers).
    Exit 1 if any target did not succeed; exit 2, running nothing, if a param is wrong."""
    if wait and not enqueue:
        raise UsageError("--wait follows a queued run; use it with --enqueue")
    texts = _param_texts(given)
    if enqueue:
        _enqueue(job, repo, limit, wait, fmt, texts)
        return
    if dry_run:
        from runner.cli import dryrun

        config = _config(repo, fmt)
        flow = job in config.workflows
        if flow and limit is not None:
            raise UsageError(f"--limit narrows a job's targets; {job} is a workflow, whose "
                             "nodes narrow theirs with 'limit' in workflows.d")
        if flow and texts:
            _params(config, job, texts)  # refused: a workflow takes none
        result = (dryrun.describe_workflow(config, job) if flow else
                  dryrun.describe(config, job, limit, params=_params(config, job, texts)))
        if fmt == "json":
            _print_json(result)
        else:
            for line in (dryrun.render_workflow if flow else dryrun.render)(result):
                click.echo(line)
        return
    import sys

    from runner.cli import progress
    from runner.config.query import lookup, select
    from runner.executor.direct import Audit, relative, run_now, save_downloads
    from runner.runs import new_run_id
    from runner.settings import Settings
    from runner.source import DirSnapshot
    from runner.store import open_store

    settings = Settings.from_env()
    config = _config(repo, fmt)
    if job in config.workflows:  # its nodes are runs of the workers: as --enqueue --wait
        _enqueue(job, repo, limit, True, fmt, texts)
        return
    chosen = select(config, lookup(config, job), limit)
    params = _params(config, job, texts)
    audit = Audit(lambda: open_store(settings.redis_url, repo / ".runner"), new_run_id(),
                  lambda line: click.echo(line, err=True))
    audit.begin(config, config.jobs[job], chosen, limit, params)
    view = (progress.Live(len(chosen)) if fmt == "text" and sys.stderr.isatty()
            else progress.Plain(len(chosen)))
    with view:
        done = run_now(config, DirSnapshot(repo), job, limit, settings, view, audit.run_id,
                       audit.asked, repo / ".runner", params)
    audit.end(done)
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


def _param_texts(given: tuple[str, ...]) -> dict[str, str]:
    """-p NAME=VALUE options as {NAME: VALUE}."""
    texts: dict[str, str] = {}
    for item in given:
        name, eq, value = item.partition("=")
        if not eq or not name:
            raise UsageError(f"-p {item!r}: write -p NAME=VALUE, e.g. -p service=nginx")
        if name in texts:
            raise UsageError(f"-p {name}=... is given twice; give each param once")
        texts[name] = value
    return texts


def _params(config: ConfigSet, job: str, texts: dict[str, str]) -> dict[str, Any] | None:
    """The run's values of `job`'s params from -p texts, converted and checked."""
    from runner.config.params import ParamsInvalid, resolve

    if job in config.workflows:
        if texts:
            raise ParamsInvalid(f"{job} is a workflow: it takes no -p; its nodes give their "
                                "jobs' params in workflows.d")
        return None
    from runner.config.query import lookup

    return resolve(job, lookup(config, job).params, texts, text=True)


def _enqueue(job: str, repo: Path, limit: str | None, wait: bool, fmt: str,
             texts: dict[str, str]) -> None:
    from runner.celery import tasks
    from runner.ops.runs import enqueue

    system, app, config = _app(repo, fmt)
    if limit is not None and job in config.workflows:
        raise UsageError(f"--limit narrows a job's targets; {job} is a workflow, whose "
                         "nodes narrow theirs with 'limit' in workflows.d")
    params = _params(config, job, texts)
    run_id = enqueue(app, system.store, config, job, "cli", limit, params=params).run_id
    if not wait:
        _print_json({"run_id": run_id, "state": "PENDING"}) if fmt == "json" else click.echo(
            run_id)
        return
    if fmt == "text":
        click.echo(f"run {run_id} queued; waiting for it to end (Ctrl-C stops waiting, not "
                   "the run)", err=True)
    _finish(tasks.wait(system.store, run_id), fmt)


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
