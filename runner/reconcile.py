"""`runner reconcile`: source → config → plan → apply → record. The one module that knows the order.

- source: fetch the branch into a bare mirror, and refuse an unsigned head (`runner.source`).
- config: load the fetched commit through the blob-id cache, with every problem located.
- plan: the applied revision again is a no-op; apply reports whether the digest of the files
  (config files and the files its jobs use, by git object id) changed what runs.
- apply: write the valid revision to the store (`runner.apply`); an invalid one is never applied.
- record: status keeps the attempted and the applied revision, the errors and the time, like
  Flux's lastAttemptedRevision / lastAppliedRevision.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.apply import Current, Validated, apply
from runner.config.load import Cache, load
from runner.errors import Problem, SourceError
from runner.source import GitSnapshot, fetch, unsigned
from runner.store import Store, keys

STATUS = keys.RECONCILE


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
    status: dict[str, Any] = store.get(STATUS) or {}
    status.update(last_reconcile=time.time(), source=source, branch=branch)
    try:
        revision = fetch(source, branch, mirror)
    except SourceError as e:
        status["fetch_error"] = str(e)
        store.put(STATUS, status)
        return Outcome(None, False, False, reason=str(e))
    status.pop("fetch_error", None)
    status["attempted_revision"] = revision
    status.pop("refused", None)
    if require_signed is not None:  # the applied head too: it may predate the keyring
        why = unsigned(mirror, revision, require_signed)
        if why:
            status.update(errors=[], refused=why)
            store.put(STATUS, status)
            return Outcome(revision, False, False, reason=why)
    if revision == status.get("applied_revision"):
        status["errors"] = []
        store.put(STATUS, status)
        return Outcome(revision, True, False)
    snapshot = GitSnapshot(mirror, revision)
    cache = {} if cache is None else cache
    loaded = load(snapshot, cache, model_too=False)  # validity only: no model to build
    if loaded.problems:
        status["errors"] = [p.as_dict() for p in loaded.problems]
        store.put(STATUS, status)
        return Outcome(revision, False, False, loaded.problems,
                       f"revision {revision[:12]} is invalid ({len(loaded.problems)} errors); "
                       f"{str(status.get('applied_revision', 'nothing'))[:12]} keeps running")
    done = apply(store, Validated(snapshot, cache),
                 Current(status.get("applied_revision"), status.get("applied_digest")))
    status.update(applied_revision=revision, applied_digest=done.digest, applied_at=time.time(),
                  errors=[])
    store.put(STATUS, status)
    return Outcome(revision, True, done.changed)
