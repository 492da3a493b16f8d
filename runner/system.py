"""What every process of a running system shares, Celery or not: the settings, the
repository, the state directory, the store, and the configuration the system runs (the revision
`runner reconcile` applied, from the store, else the repository directory) with the files its
jobs send. The Celery app is built from it in runner/celery/app.py."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.config.model import ConfigSet, Job
from runner.errors import ConfigInvalid, SourceError
from runner.executor.base import FileBlob
from runner.executor.direct import job_files, job_paths
from runner.settings import Settings
from runner.store import Store, keys, open_store
from runner.store.entries import read_applied

if TYPE_CHECKING:
    from runner.config.cache import DiskCache
    from runner.config.load import Made

RELOAD = 0.25  # seconds between looks at which revision is applied (one small store read)
DIR_RELOAD = 0.5  # seconds between looks at --repo (a stat per file) when nothing was applied
KEEP = 4  # published configurations a process keeps built (runs queued before a change)


@dataclass
class System:
    """What every process of a running system shares: settings, the repository, the store.
    Not frozen: it caches the store connection and the configuration it read."""

    settings: Settings
    repo: Path
    state_dir: Path
    _config: ConfigSet | None = None
    _looked: float = 0.0  # when the applied revision was last looked up
    _read: float = 0.0    # when --repo was last read
    _applied: str | None = None  # the digest of the applied revision, when there is one
    _seen: tuple[tuple[str, int, int, int], ...] = ()  # --repo's files when last read
    _built: dict[str, tuple[ConfigSet, dict[str, Any]]] = field(default_factory=dict)
    _blobs: dict[str, bytes] = field(default_factory=dict)
    _definitions: dict[str, dict[str, Any]] = field(default_factory=dict)
    _files: DiskCache | None = None  # --repo's files checked, by blob (directory mode)
    _made: Made = field(default_factory=dict)  # its model objects, reused while unchanged

    @cached_property
    def store(self) -> Store:
        return open_store(self.settings.redis_url, self.state_dir)

    def config(self) -> ConfigSet:
        """The configuration the system runs: the revision `runner reconcile` applied, from
        the store (looked up every RELOAD seconds), else the repository directory (read every
        DIR_RELOAD seconds)."""
        now = time.monotonic()
        if self._config is None or now - self._looked > RELOAD:
            self._looked = now
            was_applied = self._applied is not None
            applied = self.applied()
            if applied is not None:
                self._config = applied
            elif self._config is None or was_applied or now - self._read > DIR_RELOAD:
                self._read = now
                self._config = self._load(self._config if not was_applied else None)
        return self._config

    def applied(self) -> ConfigSet | None:
        """The revision `runner reconcile` applied, from the store; None if there is none."""
        applied = read_applied(self.store)
        self._applied = applied.digest if applied and applied.digest else None
        if applied is None or self._applied is None:
            return None
        return self._build(self._applied, applied.revision)

    def at(self, revision: str) -> ConfigSet:
        """The configuration of `revision` as the reconciler published it — what a run
        triggered under that revision executes — else (never published, or no reconciler)
        the one config() gives."""
        current = self.config()
        if self._applied is None or revision == current.revision:
            return current
        published = self.store.get(keys.revision(revision)) or {}
        if "digest" not in published:
            return current
        return self._build(published["digest"], revision, published)

    def _build(self, digest: str, revision: str,
               published: dict[str, Any] | None = None) -> ConfigSet:
        """The configuration of a published revision, kept by digest (the last few).
        Definitions are read per config file and kept by git object id, so a new revision
        costs the files it changed."""
        from runner.config.load import build

        if digest not in self._built:
            published = published or self.store.get(keys.revision(revision)) or {}
            objects: dict[str, dict[str, Any]] = {}
            for blob in published["config"].values():
                if blob not in self._definitions:
                    stored = self.store.get(keys.definitions(blob)) or {}
                    self._definitions[blob] = stored.get("objects", {})
                for qualified, value in self._definitions[blob].items():
                    section, name = qualified.split("/", 1)
                    objects.setdefault(section, {}).setdefault(name, value)
            while len(self._built) >= KEEP:
                del self._built[next(iter(self._built))]
            self._built[digest] = (build(revision, objects, self._made), published["files"])
        return self._built[digest][0]

    def files(self, job: Job, config: ConfigSet) -> dict[str, FileBlob]:
        """The repository files `job` of `config` sends to targets, and the known_hosts
        files of the repository its targets are checked against."""
        from runner.source import DirSnapshot

        paths = job_paths(job, config.targets.values())
        if not paths:
            return {}
        published = next((f for c, f in self._built.values() if c is config), None)
        if published is None:
            return job_files(DirSnapshot(self.repo), job, config.targets.values())
        out = {}
        for path in paths:
            entry = published[path]
            if entry["blob"] not in self._blobs:
                blob = self.store.get(keys.blob(entry["blob"])) or {}
                self._blobs[entry["blob"]] = base64.b64decode(blob["data"])
            out[path] = FileBlob(self._blobs[entry["blob"]], entry["mode"])
        return out

    def _load(self, current: ConfigSet | None = None) -> ConfigSet:
        """The configuration in --repo; `current` again when no file changed since it was
        read (a stat per file, not a parse of 100,000 schedules every DIR_RELOAD)."""
        if self.settings.require_signed:  # the directory may hold anything: never run it
            raise SourceError(f"RUNNER_REQUIRE_SIGNED is set and no signed revision is applied "
                              f"yet; nothing runs until the reconciler applies a commit signed "
                              f"by a key of {self.settings.require_signed}")
        from runner.config.cache import DiskCache
        from runner.config.load import load
        from runner.source import DirSnapshot

        snapshot = DirSnapshot(self.repo)
        seen = snapshot.fingerprint()
        if current is not None and seen == self._seen:
            return current
        first = self._files is None
        if self._files is None:  # read once; kept decoded, so a changed file costs its own
            self._files = DiskCache(self.repo)
        loaded = load(snapshot, self._files, made=self._made)
        if first:  # for the next start; later changes are parsed again then (a file each)
            self._files.save()
        self._files.keep_used()
        if loaded.config is None:
            raise ConfigInvalid(list(loaded.problems))
        self._seen = seen
        return loaded.config

    def watch(self, wake: threading.Event) -> Callable[[], None] | None:
        """Directory mode without waiting for the next look: a file written or moved into
        --repo or one of its config folders sets `wake` and makes the next config() look at
        once (inotify; removals are still seen by the look every DIR_RELOAD s). Returns the
        function that stops watching; None where inotify cannot be had."""
        from runner.adapters import inotify
        from runner.config.load import CONFIG_DIRS

        folders = [self.repo, *(p for d in CONFIG_DIRS if (p := self.repo / d).is_dir())]
        folder = inotify.open_folder(*folders) if self.repo.is_dir() else None
        if folder is None:
            return None
        stop = threading.Event()

        def follow() -> None:
            while not stop.is_set():
                if folder.wait(1.0):
                    self._looked = self._read = float("-inf")
                    wake.set()
            folder.close()

        threading.Thread(target=follow, name="repo-watch", daemon=True).start()
        return stop.set

    @property
    def broker_dir(self) -> Path:
        return self.state_dir / "broker"
