"""The store's entries (`Store.get`/`put`, named in keys.py), one frozen dataclass each, and
the typed functions every process reads and writes them with.

Each entry's `to_json` writes the JSON object runner has always written there, and `from_json`
reads any version's: a field missing (an older writer) is None, a field this version does not
know is kept in `extra` and written back, so a process upgraded in place and one not yet
upgraded read each other's entries. None fields are left out unless the entry says otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from runner.store import keys
from runner.store.base import Store


def _split(cls: type[Any], data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """`data` as the known fields of `cls` and the rest."""
    names = {f.name for f in fields(cls)} - {"extra"}
    known = {k: v for k, v in data.items() if k in names}
    return known, {k: v for k, v in data.items() if k not in names}


def _json(entry: Any, always: tuple[str, ...] = ()) -> dict[str, Any]:
    """`entry`'s fields that are set (and those in `always`), after its `extra`."""
    out = dict(entry.extra)
    for f in fields(entry):
        v = getattr(entry, f.name)
        if f.name != "extra" and (v is not None or f.name in always):
            out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


@dataclass(frozen=True)
class ReconcileStatus:
    """The reconciler's status: the attempted and the applied revision, why the last attempt
    failed (`fetch_error`, `refused`, `errors`), when, and from where."""

    last_reconcile: float | None = None
    source: str | None = None
    branch: str | None = None
    fetch_error: str | None = None
    attempted_revision: str | None = None
    refused: str | None = None   # why the head was refused (unsigned)
    errors: tuple[Mapping[str, Any], ...] | None = None  # Problem.as_dict of an invalid one
    applied_revision: str | None = None
    applied_digest: str | None = None
    applied_at: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReconcileStatus:
        known, extra = _split(cls, data)
        if known.get("errors") is not None:
            known["errors"] = tuple(known["errors"])
        return cls(**known, extra=extra)

    def to_json(self) -> dict[str, Any]:
        return _json(self)


@dataclass(frozen=True)
class Applied:
    """What every process runs: the applied revision and the digest of its files."""

    revision: str
    digest: str
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Applied:
        known, extra = _split(cls, data)
        return cls(str(known.get("revision") or ""), str(known.get("digest") or ""), extra)

    def to_json(self) -> dict[str, Any]:
        return _json(self)


@dataclass(frozen=True)
class Mark:
    """Who suspended, and when (Unix seconds)."""

    by: str | None = None
    at: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any) -> Mark:
        known, extra = _split(cls, data if isinstance(data, Mapping) else {})
        return cls(**known, extra=extra)

    def to_json(self) -> dict[str, Any]:
        return _json(self)


@dataclass(frozen=True)
class Suspended:
    """The suspended schedules: every one (`all`), or these (`schedules`, by name)."""

    all: Mark | None = None
    schedules: Mapping[str, Mark] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Suspended:
        known, extra = _split(cls, data)
        named = known.get("schedules")
        return cls(Mark.from_json(known["all"]) if known.get("all") else None,
                   {n: Mark.from_json(m) for n, m in (named or {}).items()}, extra)

    def to_json(self) -> dict[str, Any]:
        out = {**self.extra, "schedules": {n: m.to_json() for n, m in self.schedules.items()}}
        return out if self.all is None else {"all": self.all.to_json(), **out}

    def holds(self, schedule: str) -> bool:
        """Whether `schedule` is suspended (alone, or with every schedule)."""
        return self.all is not None or schedule in self.schedules


@dataclass(frozen=True)
class WorkerHeartbeat:
    """A worker's entry: what it serves (set once it matched the configuration, with
    `matched_at`), its last heartbeat, when it stopped, and when the reaper buried its runs."""

    name: str | None = None
    revision: str | None = None
    queues: tuple[str, ...] | None = None
    concurrency: int | None = None  # written, None too, with the queues
    matched_at: float | None = None
    heartbeat: float | None = None
    stopped: float | None = None
    reaped: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WorkerHeartbeat:
        known, extra = _split(cls, data)
        if known.get("queues") is not None:
            known["queues"] = tuple(known["queues"])
        return cls(**known, extra=extra)

    def to_json(self) -> dict[str, Any]:
        return _json(self, ("concurrency",) if self.matched_at is not None else ())


@dataclass(frozen=True)
class PublisherStatus:
    """The report publisher's status: its branch, tip, remote, unpushed commits, last error,
    git directory and when it wrote this. Every field is written, None too."""

    branch: str | None = None
    head: str | None = None
    remote: str | None = None
    unpushed: int | None = None
    last_error: str | None = None
    git_dir: str | None = None
    at: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PublisherStatus:
        known, extra = _split(cls, data)
        return cls(**known, extra=extra)

    def to_json(self) -> dict[str, Any]:
        return _json(self, tuple(f.name for f in fields(self)))


@dataclass(frozen=True)
class BeatStatus:
    """The beat holding the lease: who, the revision and schedules it fires, since when."""

    owner: str | None = None
    revision: str | None = None
    schedules: tuple[str, ...] | None = None
    loaded_at: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BeatStatus:
        known, extra = _split(cls, data)
        if known.get("schedules") is not None:
            known["schedules"] = tuple(known["schedules"])
        return cls(**known, extra=extra)

    def to_json(self) -> dict[str, Any]:
        return _json(self, tuple(f.name for f in fields(self)))


def read_reconcile(store: Store) -> ReconcileStatus | None:
    data = store.get(keys.RECONCILE)
    return None if data is None else ReconcileStatus.from_json(data)


def write_reconcile(store: Store, status: ReconcileStatus) -> None:
    store.put(keys.RECONCILE, status.to_json())


def read_applied(store: Store) -> Applied | None:
    data = store.get(keys.APPLIED)
    return None if data is None else Applied.from_json(data)


def write_applied(store: Store, applied: Applied) -> None:
    store.put(keys.APPLIED, applied.to_json())


def read_suspended(store: Store) -> Suspended | None:
    data = store.get(keys.SUSPENDED)
    return None if data is None else Suspended.from_json(data)


def write_suspended(store: Store, suspended: Suspended) -> None:
    store.put(keys.SUSPENDED, suspended.to_json())


def read_worker(store: Store, host: str) -> WorkerHeartbeat | None:
    data = store.get(keys.worker(host))
    return None if data is None else WorkerHeartbeat.from_json(data)


def read_workers(store: Store) -> dict[str, WorkerHeartbeat]:
    """Every worker's entry, by its Celery hostname."""
    return {k.removeprefix(keys.WORKER): WorkerHeartbeat.from_json(v)
            for k, v in store.entries(keys.WORKER).items()}


def write_worker(store: Store, host: str, entry: WorkerHeartbeat) -> None:
    store.put(keys.worker(host), entry.to_json())


def read_publisher(store: Store) -> PublisherStatus | None:
    data = store.get(keys.REPORTS)
    return None if data is None else PublisherStatus.from_json(data)


def write_publisher(store: Store, status: PublisherStatus) -> None:
    store.put(keys.REPORTS, status.to_json())


def read_beat(store: Store) -> BeatStatus | None:
    data = store.get(keys.BEAT)
    return None if data is None else BeatStatus.from_json(data)


def write_beat(store: Store, status: BeatStatus) -> None:
    store.put(keys.BEAT, status.to_json())
