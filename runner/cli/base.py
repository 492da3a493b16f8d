"""The `runner` command group and what its commands share: options, output, loading.

Exit codes: 0 ok, 1 the checked thing failed, 2 usage or environment error. Only the group
catches RunnerError; it prints the message (never a traceback) and exits.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from runner import __version__
from runner.config import load as config_load
from runner.config.model import ConfigSet
from runner.errors import ConfigInvalid, Problem, RunnerError, UsageError
from runner.runs import RunRecord, RunState

F = TypeVar("F", bound=Callable[..., Any])
REPO: Callable[[F], F] = click.option(
    "--repo", default=".", show_default=True, envvar="RUNNER_REPO",
    type=click.Path(file_okay=False, path_type=Path),
    help="The configuration repository (a directory).")


# What git check-ref-format refuses in a branch name (and a leading '-', an option to git).
_BAD_REF = re.compile(r"^-|^$|[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|^/|/$|\.$|^@$|(^|/)\.|"
                      r"\.lock(/|$)")


def git_value(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A --source or --push: a value starting with '-' would reach git as an option."""
    if value is not None and value.startswith("-"):
        raise UsageError(f"{param.opts[0]} {value!r} starts with '-', which git would read as "
                         f"an option; give a URL or a path (./{value} for a directory so "
                         "named)")
    return value


def source_value(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A --source: no option for git; a local path made absolute (git fetch runs in the
    mirror, where a relative path means something else)."""
    value = git_value(ctx, param, value)
    return str(Path(value).resolve()) if value and Path(value).exists() else value


def branch_value(_ctx: click.Context, param: click.Parameter,
                 value: str | None) -> str | None:
    """A --branch or --report-branch: a name git accepts for a branch, and no option."""
    if value is not None and _BAD_REF.search(value):
        raise UsageError(f"{param.opts[0]} {value!r} is not a branch name git accepts (see "
                         "git check-ref-format); pass a name like main or release/1.x")
    return value


def _fmt(*choices: str) -> Callable[[F], F]:
    return click.option("--format", "fmt", type=click.Choice(choices), default=choices[0],
                        show_default=True, help="Output format.")


def _print_json(value: object) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def _print_problems(problems: tuple[Problem, ...] | list[Problem], fmt: str) -> None:
    if fmt == "json":
        _print_json({"ok": not problems, "errors": [p.as_dict() for p in problems]})
    elif fmt == "github":  # a workflow command per problem, escaped as @actions/core does
        for p in problems:
            click.echo(f"::error file={_property(p.file)},line={p.line},col={p.column}::"
                       f"{_data(p.message)}")
    else:
        for p in problems:
            click.echo(p.text())
        if problems:
            click.echo(f"{len(problems)} error{'s' if len(problems) != 1 else ''}", err=True)


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


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


def _parse_now(value: str | None, option: str = "--now") -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        now = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{option} {value!r} is not an ISO 8601 time like "
                         "2026-03-29T00:00:00+01:00") from None
    if now.tzinfo is None:
        raise UsageError(f"{option} {value!r} has no UTC offset; add one, like +01:00 or Z")
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


def _system(repo: Path) -> Any:
    from runner.settings import Settings
    from runner.system import System

    return System(Settings.from_env(), repo, repo / ".runner")


def _app(repo: Path, fmt: str = "text") -> tuple[Any, Any, ConfigSet]:
    from runner.celery.app import create_app

    system = _system(repo)
    config = system.applied() or (system.config() if system.settings.require_signed
                                  else _config(repo, fmt))  # config(): why nothing is signed
    return system, create_app(system, config), config


def _record_lines(r: RunRecord) -> list[str]:
    took = f"{r.finished - r.started:.2f}s" if r.finished and r.started else "-"
    created = datetime.fromtimestamp(r.created or 0, UTC).strftime("%Y-%m-%d %H:%M:%S")
    state = r.state or r.extra.get("state", "?")  # extra: a later version's state
    lines = [f"{r.run_id}  {created}  {r.job or '?':<20} {state:<9} "
             f"{took:>8}  {r.trigger or ''}"]
    if r.late:
        lines.append(f"    late: its deadline passed at {r.late}")
    if r.params:
        lines.append("    params: " + " ".join(
            f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in r.params.items()))
    if r.waiting:
        lines.append(f"    waiting for a slot of: {', '.join(r.waiting)}")
    if r.error:
        lines.append(f"    {r.error}")
    return lines


def _run_json(record: RunRecord) -> dict[str, Any]:
    """A queued run's record as `runner run --format json` prints a direct run: its `result`
    (the same keys made up from the record when no target ran), then the record's other
    fields (state, trigger, queue, worker, created, ...)."""
    started, finished = record.started, record.finished
    result = record.result or {
        "run_id": record.run_id or None, "job": record.job, "revision": record.revision,
        "status": {"SUCCESS": "success", "REVOKED": "cancelled"}.get(
            str(record.state), "failed"),
        "started": started, "finished": finished,
        "duration": round(finished - started, 3) if started and finished else None,
        "targets": {}}
    data = record.to_json()
    return {**result, **{k: v for k, v in data.items() if k not in result and k != "result"}}


def _finish(record: RunRecord, fmt: str) -> None:
    if fmt == "json":
        _print_json(_run_json(record))
    else:
        for line in _record_lines(record):
            click.echo(line)
        for name, t in (record.result or {}).get("targets", {}).items():
            click.echo(f"    {t['status']:<9} {name}" + (f": {t['error']}" if t["error"] else ""))
    if record.state != RunState.SUCCESS:
        raise SystemExit(1)
