"""`runner reconcile`: source → config → plan → apply → record. The one module that knows the order.

- source: fetch the branch into a bare mirror, and refuse an unsigned head (`runner.source`).
- config: load the fetched commit through the blob-id cache, with every problem located.
- plan: the applied revision again is a no-op; apply reports whether the digest of the files
  (config files and the files its jobs use, by git object id) changed what runs.
- apply: write the valid revision to the store (`runner.apply`); an invalid one is never applied.
- record: status keeps the attempted and the applied revision, the errors and the time, like
  Flux's lastAttemptedRevision / lastAppliedRevision; a refused head's `refused` notice is
  written once per commit (runner.notify.refused).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

from runner.apply import Current, Validated, apply
from runner.config.load import Cache, load
from runner.errors import Problem, SourceError
from runner.notify import refused
from runner.source import GitSnapshot, fetch, unsigned
from runner.store import Store
from runner.store.entries import ReconcileStatus, read_reconcile, write_reconcile


@dataclass(frozen=True)
class Outcome:
    """What one reconcile did: the revision it saw, whether it runs now, whether that changed
    what runs, and why not when a step failed."""

    revision: str | None
    applied: bool          # this revision is the applied one now
    changed: bool          # and it changed what runs
    problems: tuple[Problem, ...] = ()
    reason: str | None = None  # why a step failed


def reconcile(store: Store, source: str, branch: str, mirror: Path,
              cache: Cache | None = None, require_signed: Path | None = None) -> Outcome:
    """Bring the store to the head of `branch` at `source`, and record the outcome."""
    before = read_reconcile(store) or ReconcileStatus()
    status = replace(before, last_reconcile=time.time(), source=source, branch=branch)
    try:
        revision = fetch(source, branch, mirror)
    except SourceError as e:
        write_reconcile(store, replace(status, fetch_error=str(e)))
        return Outcome(None, False, False, reason=str(e))
    status = replace(status, fetch_error=None, attempted_revision=revision, refused=None)
    if require_signed is not None:  # the applied head too: it may predate the keyring
        why = unsigned(mirror, revision, require_signed)
        if why:
            write_reconcile(store, replace(status, errors=(), refused=why))
            _notice(store, before, GitSnapshot(mirror, revision), why, ())
            return Outcome(revision, False, False, reason=why)
    if revision == status.applied_revision:
        write_reconcile(store, replace(status, errors=()))
        return Outcome(revision, True, False)
    snapshot = GitSnapshot(mirror, revision)
    cache = {} if cache is None else cache
    loaded = load(snapshot, cache, model_too=False)  # validity only: no model to build
    if loaded.problems:
        write_reconcile(store, replace(status, errors=tuple(p.as_dict() for p in loaded.problems)))
        why = (f"revision {revision[:12]} is invalid ({len(loaded.problems)} errors); "
               f"{str(status.applied_revision or 'nothing')[:12]} keeps running")
        _notice(store, before, snapshot, why, loaded.problems)
        return Outcome(revision, False, False, loaded.problems, why)
    done = apply(store, Validated(snapshot, cache),
                 Current(status.applied_revision, status.applied_digest))
    write_reconcile(store, replace(status, applied_revision=revision, applied_digest=done.digest,
                                   applied_at=time.time(), errors=()))
    return Outcome(revision, True, done.changed)


def _notice(store: Store, before: ReconcileStatus, snapshot: GitSnapshot, why: str,
            problems: tuple[Problem, ...]) -> None:
    """The `refused` notice of the head, unless the last reconcile refused it already."""
    if before.attempted_revision == snapshot.revision and (before.errors or before.refused):
        return
    author = snapshot.commit.author
    refused.note(store, snapshot.revision, f"{author.name} <{author.email}>",
                 snapshot.commit.summary if isinstance(snapshot.commit.summary, str) else "",
                 why, [p.text() for p in problems])
