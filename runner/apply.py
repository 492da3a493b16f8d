"""Apply: a validated revision written to the store, where every process reads what to run.

Content-addressed by git object id: each config file's definitions (`definitions:BLOB`) and each
file its jobs reference (`blob:BLOB`) that the applied revision did not already have — so the cost
follows the change, not the repository — then the revision's map of paths to ids
(`revision:COMMIT`, with a digest of them), then `applied` names it. Only a revision whose
configuration loaded without problems reaches here (`Validated`): an invalid one is never applied.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from runner.config.load import Cache, check_file, decode, kind_for
from runner.source import GitSnapshot
from runner.store import Store, entries, keys


@dataclass(frozen=True)
class Validated:
    """A revision whose configuration loaded without problems, with the per-file results of
    loading it (reused here, so no file is checked twice)."""

    snapshot: GitSnapshot
    cache: Cache


@dataclass(frozen=True)
class Current:
    """The revision applied before this one, as the reconcile status records it."""

    revision: str | None = None
    digest: str | None = None


@dataclass(frozen=True)
class Applied:
    """What apply wrote: the revision, the digest of its files, and whether that digest differs
    from the one applied before (a new commit that changes nothing that runs does not)."""

    revision: str
    digest: str
    changed: bool


def apply(store: Store, validated: Validated, current: Current) -> Applied:
    """Write `validated` to the store and mark it applied."""
    snapshot, cache = validated.snapshot, validated.cache
    before = store.get(keys.revision(str(current.revision))) or {}
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
        paths |= result.files()
        if f.blob not in known_config:  # publish what changed; the rest is there already
            store.put(keys.definitions(f.blob), {"objects": decode(result.objects)})
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(paths):
        blob, mode = snapshot.blob_info(path)
        if blob not in known_files and store.get(keys.blob(blob)) is None:
            store.put(keys.blob(blob), {"data": base64.b64encode(snapshot.read(path)[0]).decode()})
        files[path] = {"blob": blob, "mode": mode}
    revision = snapshot.revision
    digest = hashlib.sha256(json.dumps([config, files], sort_keys=True).encode()).hexdigest()
    store.put(keys.revision(revision),
              {"revision": revision, "config": config, "files": files, "digest": digest})
    entries.write_applied(store, entries.Applied(revision, digest))
    return Applied(revision, digest, digest != current.digest)
