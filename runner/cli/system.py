"""The running system's processes: worker, api, beat, up, reconcile, publish."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click

from runner.cli.base import (
    REPO,
    _app,
    _config,
    _print_problems,
    _system,
    branch_value,
    cli,
    git_value,
    source_value,
)
from runner.errors import UsageError

PUSH = click.option("--push", metavar="REMOTE", callback=git_value,
                    help="Push the report branch to REMOTE (a remote name of --repo, or a "
                         "URL); default: to --source when it is not --repo, else nowhere (it "
                         "stays local).")

SIGNED = click.option(
    "--require-signed", envvar="RUNNER_REQUIRE_SIGNED",
    type=click.Path(exists=True, path_type=Path),
    help="Apply only revisions whose head commit is signed by a key of this keyring: an SSH "
         "allowed_signers file or a GnuPG home directory (default: $RUNNER_REQUIRE_SIGNED).")


@cli.command()
@click.argument("name")
@REPO
@click.option("--concurrency", type=click.IntRange(1, 1024),
              help="Runs at once in this process (default: the worker's in queues.yaml).")
def worker(name: str, repo: Path, concurrency: int | None) -> None:
    """Start a Celery worker serving the queues queues.yaml assigns to NAME."""
    import socket

    from runner.celery.app import worker_hostname
    from runner.celery.tasks import sweep_orphans
    from runner.celery.worker import install

    system, app, config = _app(repo)
    # a direct `runner run` killed mid-run, and on the embedded broker a worker (Redis hands
    # a dead worker's runs to another one)
    for run_id in sweep_orphans(system.store, socket.gethostname(),
                                cli_only=bool(system.settings.redis_url)):
        click.echo(f"run {run_id}: the process running it died mid-run; marked FAILURE",
                   err=True)
    if not system.settings.redis_url:  # what a write killed mid-way (power loss) left
        from runner.store.files import FileStore, clean_stale

        clean_stale([system.state_dir / "state" / d for d in FileStore.FOLDERS]
                    + [system.broker_dir / d for d in ("queue", "control")])
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

    from runner.celery.beat import Beat, Stopped

    system, app, _config_set = _app(repo)
    from runner.settings import masked_url

    beat = Beat(system, app)
    with contextlib.suppress(Stopped):
        for sig in (signal.SIGINT, signal.SIGTERM):  # at once, even mid-pass
            signal.signal(sig, lambda *_: beat.interrupt())
        click.echo(f"beat {masked_url(system.settings.redis_url) or 'embedded'}: firing "
                   f"schedules of {repo}", err=True)
        beat.run(beat.stop)


@cli.command()
@REPO
@click.option("--source", callback=source_value,
              help="What the reconciler watches (default: --repo, when it is a git "
                   "repository).")
@click.option("--branch", callback=branch_value,
              help="The branch to apply (default: the repository's current one).")
@click.option("--report-branch", default="reports", show_default=True,
              callback=branch_value,
              help="The branch each finished run is committed to.")
@click.option("--api-bind", default="127.0.0.1:8080", show_default=True,
              help="Where `runner api` (dashboard, REST, events, metrics) listens.")
@PUSH
@SIGNED
def up(repo: Path, source: str | None, branch: str | None, report_branch: str,
       api_bind: str, push: str | None, require_signed: Path | None) -> None:
    """Start the reconciler, beat, every worker of queues.yaml, the report publisher and the
    API, and keep them running (following the configuration); Ctrl-C or SIGTERM stops them
    all."""
    import logging
    import signal
    import threading

    from runner.api import check_listen, load_auth, parse_bind
    from runner.ops.reconcile import refs_dir
    from runner.publish import current_branch, locate
    from runner.up import Plan, serve

    # What would make a child fail at start fails here, before any child starts (exit 2).
    host, port = parse_bind(api_bind, "--api-bind")
    keyring = str(require_signed.resolve()) if require_signed else None
    if keyring:  # every child (and System) then runs only what the reconciler applied
        import os

        os.environ["RUNNER_REQUIRE_SIGNED"] = keyring
    system = _system(repo)  # the RUNNER_* settings
    config = system.applied() or (None if keyring else _config(repo, "text"))
    load_auth(system.settings, system.state_dir)  # RUNNER_API_TOKENS, RUNNER_API_JWT_KEY
    check_listen(host, port, "--api-bind")
    watched = source or (str(repo.resolve()) if refs_dir(str(repo)) else None)
    remote = locate(repo, system.state_dir, source, push)[1] if watched else None
    if push and not watched:
        raise UsageError(f"--push {push!r}: {repo} is not a git repository and there is no "
                         "--source, so there is no report branch to push")
    if keyring and not watched:
        raise UsageError(f"--require-signed {require_signed}: {repo} is not a git repository "
                         "and there is no --source, so there are no commits to verify")
    branch = branch or (current_branch(watched) if watched else "main")
    from runner.settings import masked_url

    where = masked_url(system.settings.redis_url) or f"embedded, state in {repo / '.runner'}"
    click.echo(f"runner up ({where}): "
               f"{f'reconciler of {watched} {branch}, ' if watched else ''}"
               f"beat, api on {api_bind} and workers "
               f"{', '.join(config.workers) if config else '(once a signed commit applies)'}"
               f"{f', report publisher to branch {report_branch}, ' if watched else ''}"
               f"{(f'pushed to {remote}' if remote else 'kept local') if watched else ''}",
               err=True)
    logging.basicConfig(format="%(message)s")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    serve(system, Plan(repo, watched, branch, report_branch, source, api_bind, push, keyring),
          stop)


@cli.command()
@REPO
@click.option("--once", "mode", flag_value="once", default=True,
              help="Reconcile once and exit (the default): 0 applied or unchanged, 1 the "
                   "revision is invalid, 2 the source cannot be fetched.")
@click.option("--watch", "mode", flag_value="watch",
              help="Reconcile every --interval until Ctrl-C.")
@click.option("--source", callback=source_value,
              help="A git URL or a local repository (default: --repo itself).")
@click.option("--branch", default="main", show_default=True, callback=branch_value,
              help="The branch to apply.")
@click.option("--interval", default="30s", show_default=True,
              help="With --watch: time between fetches (30s, 1m, ...).")
@SIGNED
def reconcile(repo: Path, mode: str, source: str | None, branch: str, interval: str,
              require_signed: Path | None) -> None:
    """Fetch the source, validate its branch and apply it if valid; record the outcome."""
    import signal
    import threading

    from runner.config.model import seconds
    from runner.ops.reconcile import Reconciler
    from runner.reconcile import Outcome

    try:
        every = seconds(int(interval) if interval.isdigit() else interval)
    except ValueError:
        raise UsageError(f"--interval {interval!r} is not a duration like 30s or 1m") from None

    def tell(outcome: Outcome) -> None:
        if outcome.problems:
            _print_problems(outcome.problems, "text")
        if outcome.reason:
            click.echo(f"error: {outcome.reason}", err=True)
        else:
            what = "applied" if outcome.changed else "unchanged"
            click.echo(f"{branch} at {str(outcome.revision)[:12]}: {what}")

    reconciler = Reconciler(_system(repo), source or str(repo.resolve()), branch,
                            require_signed, tell)
    if mode == "once":
        raise SystemExit(reconciler.once())
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    reconciler.watch(every, stop)


@cli.command()
@REPO
@click.option("--once", "mode", flag_value="once", default=True,
              help="Commit every finished run not yet committed, push, exit (the default).")
@click.option("--watch", "mode", flag_value="watch",
              help="Keep committing runs as they finish until Ctrl-C (what runner up runs).")
@click.option("--source", callback=source_value,
              help="The configuration's source when it is not --repo (its mirror "
                   "under .runner/source.git holds the branch; pushed to SOURCE).")
@PUSH
@click.option("--report-branch", default="reports", show_default=True,
              callback=branch_value,
              help="The branch runs are committed to.")
@click.option("--batch", default=500, show_default=True, type=click.IntRange(1, 100000),
              help="Runs taken off the store per checkpoint.")
def publish(repo: Path, mode: str, source: str | None, push: str | None, report_branch: str,
            batch: int) -> None:
    """Commit finished runs to the report branch and push it where told (the one writer)."""
    import logging
    import signal
    import threading

    from runner import publish as pub
    from runner.store.entries import PublisherStatus, read_publisher

    system = _system(repo)
    git_dir, remote = pub.locate(repo, system.state_dir, source, push)
    publisher = pub.Publisher(git_dir, report_branch, remote)
    stop = threading.Event()
    if mode == "watch":
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        click.echo(f"publisher: runs to {report_branch} of {git_dir}, "
                   f"{f'pushed to {remote}' if remote else 'kept local (no --push)'}", err=True)
    if mode == "watch":  # the notifier lives with the publisher (runner up runs both)
        import os

        from runner.notify.outbox import start

        start(system.store, system.config, system.settings, os.environ, stop)
    try:
        pub.serve(system.store, publisher, stop, pub.keep_days_of(system.config), batch,
                  once=mode == "once", keep_runs=system.settings.keep_runs)
    finally:
        publisher.close()
    if mode == "once":
        s = read_publisher(system.store) or PublisherStatus()
        click.echo(f"{report_branch} at {str(s.head)[:12]}; "
                   + (f"unpushed {s.unpushed}" if remote else "kept local (no --push)"))
