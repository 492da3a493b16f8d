"""`runner reconcile`: fetch → load → plan → apply → record. The one module that knows the order.

- fetch: the source (a URL or a local repository) into a bare mirror under the state directory
  (`git fetch --force`, so a rewritten branch is followed); never touches a user's worktree.
- load: the fetched commit through the blob-id cache, with every problem located.
- plan: compare a digest of the revision's files (config files and the files its jobs use, by
  git object id) with the applied revision's; an unchanged plan is a no-op.
- apply: publish, content-addressed by git object id, each config file's definitions
  (`definitions:ID`) and each referenced file (`blob:ID`) that the applied revision did not
  already have — so the cost follows the change, not the repository — then the revision's
  map of paths to ids (`revision:COMMIT`), then mark it applied. An invalid revision is never
  applied.
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

from runner.config.load import Cache, check_file, decode, kind_for, load
from runner.errors import Problem, SourceError
from runner.store import Store, keys

STATUS = keys.RECONCILE
APPLIED = keys.APPLIED  # {"revision", "digest"}: small, so every process can look every RELOAD


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
        # HEAD, not the directory: the report publisher may be creating the same mirror
        repo = (git.Repo(mirror) if (mirror / "HEAD").exists()
                else git.Repo.init(mirror, bare=True, mkdir=True))
        repo.git.fetch("--quiet", "--force", "--no-tags", "--end-of-options", source,
                       f"+refs/heads/{branch}:refs/heads/{branch}")
        return str(repo.commit(f"refs/heads/{branch}").hexsha)
    except (git.GitCommandError, git.InvalidGitRepositoryError, ValueError) as e:
        detail = getattr(e, "stderr", "") or str(e)
        detail = " ".join(str(detail).replace("stderr:", "").split())[:300]
        raise SourceError(f"cannot fetch branch {branch!r} from {source}: {detail}") from None


def unsigned(mirror: Path, revision: str, keyring: Path) -> str | None:
    """Why `revision` is not signed by a key of `keyring` (git's own verify-commit), or None.
    `keyring`: an SSH allowed_signers file, or a GnuPG home directory."""
    import os
    import subprocess

    env = {**os.environ}
    options: list[str] = []
    if keyring.is_dir():
        env["GNUPGHOME"] = str(keyring)
    else:
        options = ["-c", "gpg.format=ssh", "-c", f"gpg.ssh.allowedSignersFile={keyring}"]
    argv = ["git", "-C", str(mirror), *options, "verify-commit", "--end-of-options", revision]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if done.returncode == 0:
        return None
    said = [line for line in done.stderr.strip().splitlines() if line.strip()]
    return (f"head commit {revision[:12]} is not signed by a key of {keyring} "
            f"({said[-1] if said else 'no signature'}); it is not applied")


def reconcile(store: Store, source: str, branch: str, mirror: Path,
              cache: Cache | None = None, require_signed: Path | None = None) -> Outcome:
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
    before = store.get(keys.revision(str(status.get("applied_revision")))) or {}
    known_config = set((before.get("config") or {}).values())
    known_files = {r["blob"] for r in (before.get("files") or {}).values()}
    config: dict[str, str] = {}  # config file -> blob
    paths: set[str] = set()
    for f in snapshot.files():
        kind = kind_for(f.path)
        if kind is None:
            continue
        result = cache.get(f"{kind}:{f.path}:{f.blob}") or check_file(kind, f.path, f.read())
        config[f.path] = f.blob
        paths |= {value for _where, ref, value in result[5] if ref == "file"}
        if f.blob not in known_config:  # publish what changed; the rest is there already
            store.put(keys.definitions(f.blob), {"objects": decode(result[2])})
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(paths):
        blob, mode = snapshot.blob_info(path)
        if blob not in known_files and store.get(keys.blob(blob)) is None:
            store.put(keys.blob(blob), {"data": base64.b64encode(snapshot.read(path)[0]).decode()})
        files[path] = {"blob": blob, "mode": mode}
    digest = hashlib.sha256(json.dumps([config, files], sort_keys=True).encode()).hexdigest()
    published = {"revision": revision, "config": config, "files": files, "digest": digest}
    changed = digest != status.get("applied_digest")
    store.put(keys.revision(revision), published)
    status.update(applied_revision=revision, applied_digest=digest, applied_at=time.time(),
                  errors=[])
    store.put(APPLIED, {"revision": revision, "digest": digest})
    store.put(STATUS, status)
    return Outcome(revision, True, changed)
