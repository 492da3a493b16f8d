"""`runner reconcile`: fetch → load → plan → apply → record. The one module that knows the order.

- fetch: the source (a URL or a local repository) into a bare mirror under the state directory
  (`git fetch --force`, so a rewritten branch is followed); never touches a user's worktree.
- load: the fetched commit through the blob-id cache, with every problem located.
- plan: compare a digest of the definitions and referenced files with the applied revision's;
  an unchanged plan is a no-op.
- apply: publish the revision's definitions and its jobs' files to the store, both
  content-addressed (`definitions:SHA256`, `blob:SHA256`; `revision:COMMIT` points at its
  definitions), then mark it applied. An invalid revision is never applied.
- record: status keeps the attempted and the applied revision, the errors and the time, like
  Flux's lastAttemptedRevision / lastAppliedRevision.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.config.load import Cache, load
from runner.errors import Problem, SourceError
from runner.execute import job_files
from runner.state import Store

STATUS = "reconcile"


@dataclass(frozen=True)
class Outcome:
    revision: str | None
    applied: bool          # this revision is the applied one now
    changed: bool          # and it changed what runs
    problems: tuple[Problem, ...] = ()
    reason: str | None = None  # why a step failed


def fetch(source: str, branch: str, mirror: Path) -> str:
    """The commit id of `branch` at `source`, fetched into the bare `mirror`."""
    import git

    try:
        repo = git.Repo(mirror) if mirror.exists() else git.Repo.init(mirror, bare=True)
        repo.git.fetch("--quiet", "--force", "--no-tags", source,
                       f"+refs/heads/{branch}:refs/heads/{branch}")
        return str(repo.commit(f"refs/heads/{branch}").hexsha)
    except (git.GitCommandError, git.InvalidGitRepositoryError, ValueError) as e:
        detail = getattr(e, "stderr", "") or str(e)
        detail = " ".join(str(detail).replace("stderr:", "").split())[:300]
        raise SourceError(f"cannot fetch branch {branch!r} from {source}: {detail}") from None


def reconcile(store: Store, source: str, branch: str, mirror: Path,
              cache: Cache | None = None) -> Outcome:
    from runner.source import GitSnapshot

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
    if revision == status.get("applied_revision"):
        status["errors"] = []
        store.put(STATUS, status)
        return Outcome(revision, True, False)
    snapshot = GitSnapshot(mirror, revision)
    loaded = load(snapshot, cache)
    if loaded.config is None:
        status["errors"] = [p.as_dict() for p in loaded.problems]
        store.put(STATUS, status)
        return Outcome(revision, False, False, loaded.problems,
                       f"revision {revision[:12]} is invalid ({len(loaded.problems)} errors); "
                       f"{str(status.get('applied_revision', 'nothing'))[:12]} keeps running")
    files: dict[str, dict[str, Any]] = {}
    for job in loaded.config.jobs.values():
        for path, blob in job_files(snapshot, job).items():
            digest = hashlib.sha256(blob.data).hexdigest()
            if path not in files:
                store.put(f"blob:{digest}", {"data": base64.b64encode(blob.data).decode()})
            files[path] = {"sha256": digest, "mode": blob.mode}
    plan = {"objects": loaded.objects, "files": files}
    digest = hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()
    changed = digest != status.get("applied_digest")
    if changed:
        store.put(f"definitions:{digest}", plan)
    store.put(f"revision:{revision}", {"revision": revision, "definitions": digest})
    status.update(applied_revision=revision, applied_digest=digest, applied_at=time.time(),
                  errors=[])
    store.put(STATUS, status)
    return Outcome(revision, True, changed)
