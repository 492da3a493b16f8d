"""The Celery app, built by create_app(system) — no module-level app, no current_app.

Broker: Redis when REDIS_URL is set, else kombu's filesystem transport under the state
directory (the embedded default: no server; fanout, hence remote control, since kombu 5.3).
Celery's own result backend is off: run records live in runner's store (store/).
One task, runner.run_job(job, revision, run_id, limit), sent under the job's name (Celery's
`shadow`: what Flower and `celery events` show); a router function sends it to the job's queue
with a message priority from the queue's priority, read from the configuration. runner/app.py
is this app for Celery's own command line (`celery -A runner.app ...`).
"""

from __future__ import annotations

import base64
import math
import os
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from celery import Celery

from runner.config.model import ConfigSet, Job
from runner.errors import ConfigInvalid, SourceError
from runner.execute import job_files, job_paths
from runner.executor.base import FileBlob
from runner.redis_url import broker_url, client, transport_options
from runner.settings import Settings
from runner.store import Store, keys, open_store

TASK = "runner.run_job"
RELOAD = 0.25  # seconds between looks at which revision is applied (one small store read)
DIR_RELOAD = 0.5  # seconds between looks at --repo (a stat per file) when nothing was applied
KEEP = 4  # published configurations a process keeps built (runs queued before a change)
MAX_PRIORITY = 9


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
        from runner.reconcile import APPLIED

        applied = self.store.get(APPLIED) or {}
        self._applied = applied.get("digest")
        if not self._applied:
            return None
        return self._build(self._applied, applied["revision"])

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
            self._built[digest] = (build(revision, objects), published["files"])
        return self._built[digest][0]

    def files(self, job: Job, config: ConfigSet) -> dict[str, FileBlob]:
        """The repository files `job` of `config` sends to targets."""
        from runner.source import DirSnapshot

        paths = job_paths(job)
        if not paths:
            return {}
        published = next((f for c, f in self._built.values() if c is config), None)
        if published is None:
            return job_files(DirSnapshot(self.repo), job)
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
        disk = DiskCache(self.repo)
        loaded = load(snapshot, disk)
        disk.save()
        if loaded.config is None:
            raise ConfigInvalid(list(loaded.problems))
        self._seen = seen
        return loaded.config

    @property
    def broker_dir(self) -> Path:
        return self.state_dir / "broker"


def time_limit(job: Job, targets: int) -> int:
    """Seconds a run of `job` on `targets` targets may take: every wave of `concurrency`
    targets its full timeout on every attempt, plus the backoffs, plus a minute."""
    waves = max(1, math.ceil(targets / job.concurrency))
    r = job.retries
    backoff = sum(min(r.max_backoff, r.backoff * 2 ** i) for i in range(r.attempts))
    return int(waves * (job.timeout * (r.attempts + 1) + backoff) + 60)


def broker_options(system: System, config: ConfigSet) -> tuple[str, dict[str, Any]]:
    longest = max((time_limit(j, len(config.targets)) for j in config.jobs.values()),
                  default=3600)
    if system.settings.redis_url:
        return broker_url(system.settings.redis_url), {
            "visibility_timeout": 2 * longest,  # never redeliver a run that is still going
            "priority_steps": list(range(MAX_PRIORITY + 1)),
            "queue_order_strategy": "priority",
            **transport_options(system.settings.redis_url)}  # Sentinel: master_name
    for d in ("queue", "processed", "control"):
        (system.broker_dir / d).mkdir(parents=True, exist_ok=True)
    q = str(system.broker_dir / "queue")
    return "", {
        "data_folder_in": q, "data_folder_out": q,
        "processed_folder": str(system.broker_dir / "processed"),
        "control_folder": str(system.broker_dir / "control"), "polling_interval": 0.05}


def create_app(system: System, config: ConfigSet | None = None) -> Celery:
    config = config or system.config()
    app = Celery("runner", set_as_current=False)
    url, options = broker_options(system, config)

    def route(name: str, args: Any, kwargs: Any, options: Any, task: Any = None,
              **kw: Any) -> dict[str, Any] | None:
        if name != TASK:
            return None
        current = app.conf.runner_config
        job = current.jobs.get(kwargs["job"])
        if job is None:
            return None
        # kombu's Redis transport pops priority 0 first, across all of a worker's queues
        return {"queue": job.queue, "priority": MAX_PRIORITY - current.queues[job.queue].priority}

    app.conf.update(
        broker_url=url or None, broker_transport_options=options,
        # embedded: kombu's filesystem transport, writing messages atomically (broker.py)
        # Redis: kombu's, riding out an outage with runs in flight (redis_broker.py)
        broker_transport=("runner.redis_broker:Transport" if url.startswith("redis://")
                          else "runner.redis_broker:SentinelTransport"
                          if url.startswith("sentinel://")
                          else None if url else "runner.broker:Transport"),
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a Redis outage is waited out, however long
        task_serializer="json", accept_content=["json"], result_serializer="json",
        task_ignore_result=True, result_backend=None, result_expires=7 * 86400,
        task_acks_late=True, task_reject_on_worker_lost=False, worker_prefetch_multiplier=1,
        task_routes=(route,), task_default_queue="runner-default",
        # task events cost a publish per state change: off, as in Celery; Flower turns them on
        # at run time (`celery -A runner.app control enable_events`)
        worker_hijack_root_logger=False, worker_send_task_events=False,
        task_send_sent_event=False, worker_cancel_long_running_tasks_on_connection_loss=False,
        runner_config=config, runner_system=system)

    from runner.tasks import register

    register(app, system)
    return app


def worker_hostname(name: str) -> str:
    return f"{name}-{os.getpid()}@%h"


def queue_length(system: System, queue: str) -> int:
    """Messages waiting in `queue` (all priorities)."""
    if system.settings.redis_url:
        r = client(system.settings.redis_url)
        keys = [queue] + [f"{queue}\x06\x16{p}" for p in range(1, MAX_PRIORITY + 1)]
        return sum(int(r.llen(k)) for k in keys)
    folder = system.broker_dir / "queue"
    if not folder.is_dir():
        return 0
    return sum(1 for n in os.listdir(folder) if n.partition(".")[2] == f"{queue}.msg")
