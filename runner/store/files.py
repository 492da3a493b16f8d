"""The store in files under the state directory (the embedded default; shared by the processes
of one machine): one JSON file per record and entry, written atomically; a full or read-only
disk raises StoreUnavailable, as Redis being away does."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import tempfile
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from runner.errors import StoreUnavailable
from runner.runs import ACTIVE, FINAL, RunRecord, RunState
from runner.store import keys, slotfiles
from runner.store.base import (
    ID_SLACK,
    SUMMARY,
    Begin,
    Cursor,
    RunFilter,
    begin,
    finished,
    owned,
    translated,
)
from runner.store.changes import file_changes, stamp

# a full or read-only state directory (EACCES: made read-only by chmod, for a non-root user)
UNWRITABLE = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)
STALE = 600.0  # seconds after which a temporary file left by a killed write is removed
TRIM_EVERY = 100  # notify feed marks a process writes between two trims of it to NOTIFY_KEEP


def unwritable(root: Path, e: OSError) -> StoreUnavailable:
    """The outage a full or read-only state directory `root` is."""
    return StoreUnavailable(f"the state directory {root} cannot be written ({e.strerror}): "
                            "free space or make it writable")


def _disk_error(store: Any, e: Exception) -> StoreUnavailable | None:
    """An OSError of a full or read-only state directory as runner's error."""
    if isinstance(e, OSError) and e.errno in UNWRITABLE:
        return unwritable(store.root, e)
    return None


def clean_stale(folders: list[Path], age: float = STALE) -> int:
    """Removes the temporary files (`.tmp-*` of FileStore, `*.partial` of the embedded
    broker) older than `age` seconds in `folders` that a killed process left: how many."""
    n, before = 0, time.time() - age
    for folder in folders:
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(folder):
                if (entry.name.startswith(".tmp-") or entry.name.endswith(".partial")) \
                        and entry.stat().st_mtime < before:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                        n += 1
    return n


@translated(_disk_error)
class FileStore:
    """Files under `root`, written atomically; safe for several processes of one machine.
    A full or read-only disk raises StoreUnavailable (as Redis being away does)."""

    FOLDERS = ("runs", "cancel", "kv", "locks", "publish", "notify")

    def __init__(self, root: Path) -> None:
        self.root, self._marks = root, 0
        try:
            for d in self.FOLDERS:
                (root / d).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            if e.errno not in UNWRITABLE:
                raise
            raise unwritable(root, e) from None

    def ping(self) -> None:
        """StoreUnavailable unless a small file can be written here (not full, not
        read-only)."""
        try:
            with tempfile.TemporaryFile(dir=self.root / "kv", prefix=".ping-") as f:
                f.write(b"\0" * 4096)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise unwritable(self.root, e) from None

    def server(self) -> str:
        return str(self.root)  # the same files whatever restarts

    def changes(self) -> AsyncIterator[dict[str, Any]]:
        """What is written under runs/ and kv/ (see Store.changes)."""
        return file_changes(self.root)

    def _write(self, path: Path, value: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(value, f)
            os.replace(tmp, path)
        except BaseException:  # a full disk: no half-written file left behind
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _read(self, path: Path) -> dict[str, Any] | None:
        try:
            return dict(json.loads(path.read_text()))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def save_run(self, record: RunRecord) -> None:
        self._save(record.to_json())

    def _save(self, record: dict[str, Any]) -> None:
        self._write(self.root / "runs" / f"{record['run_id']}.json", record)
        if record.get("state") in FINAL:  # the report publisher's feed: a marker file
            stamp = int(finished(record) * 1_000_000)
            (self.root / "publish" / f"{stamp:017d}-{record['run_id']}").touch()
            self.to_notify(record["run_id"], finished(record))

    def _record_lock(self, run_id: str) -> contextlib.AbstractContextManager[None]:
        """Serializes read-modify-writes of one run record across processes (the worker's
        main process, its pool, `runner cancel`, the API): one of 64 striped locks."""
        return self._exclusive(f"runs-{zlib.crc32(run_id.encode()) % 64}")

    def update_run(self, run_id: str, fields: dict[str, Any]) -> None:
        self.end_run(run_id, fields, ())

    def end_run(self, run_id: str, fields: dict[str, Any], expect: tuple[str, ...]) -> bool:
        with self._record_lock(run_id):
            record = self._load(run_id)
            if expect and (record is None or record.get("state") not in expect):
                return False
            record = record or {"run_id": run_id}
            record.update(fields)
            self._save(record)
            return True

    def withdraw(self, run_id: str) -> None:
        if self._load(run_id) is not None:  # the run id names a record file
            with contextlib.suppress(FileNotFoundError):
                (self.root / "runs" / f"{run_id}.json").unlink()

    def begin_run(self, run_id: str, job: str, worker: str, now: float) -> Begin:
        with self._record_lock(run_id):
            verdict, record = begin(self._load(run_id),
                                    self.cancel_requested(run_id) is not None, run_id, job,
                                    worker, now)
            if record is not None:
                self._save(record)
        return verdict

    def mark_received(self, marks: list[tuple[str, float]]) -> None:
        for run_id, now in marks:
            with self._record_lock(run_id):
                record = self._load(run_id)
                if record is not None:
                    record.setdefault("received", now)
                    if record.get("state") == RunState.PENDING:
                        record["state"] = RunState.RECEIVED
                    self._save(record)

    def _load(self, run_id: str) -> dict[str, Any] | None:
        """The JSON of run `run_id`'s record, or None."""
        if "/" in run_id or run_id.startswith("."):
            return None
        return self._read(self.root / "runs" / f"{run_id}.json")

    def run(self, run_id: str) -> RunRecord | None:
        record = self._load(run_id)
        return None if record is None else RunRecord.from_json(record)

    def runs(self, job: str | None = None, limit: int = 20) -> list[RunRecord]:
        names = sorted((n for n in os.listdir(self.root / "runs") if n.endswith(".json")),
                       reverse=True)  # run ids sort by creation time
        out = []
        for n in names:
            record = self._read(self.root / "runs" / n)
            if record and (job is None or record.get("job") == job):
                out.append(RunRecord.from_json(record))
                if len(out) >= limit:
                    break
        return out

    def request_cancel(self, run_id: str, by: str) -> None:
        self._write(self.root / "cancel" / run_id, {"by": by})

    def cancel_requested(self, run_id: str) -> str | None:
        path = self.root / "cancel" / run_id
        if not path.exists():
            return None  # below: an empty file is a request of a version that named no one
        return str((self._read(path) or {}).get("by") or "runner cancel")

    @contextlib.contextmanager
    def _exclusive(self, name: str) -> Iterator[None]:
        with open(self.root / "locks" / f"{name}.flock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    def lock(self, name: str, owner: str, ttl: float) -> bool:
        with self._exclusive(name):
            path = self.root / "locks" / f"{name}.json"
            held = self._read(path)
            if held and held["owner"] != owner and held["until"] > time.time():
                return False
            self._write(path, {"owner": owner, "until": time.time() + ttl})
            return True

    def take_slots(self, wanted: list[tuple[str, int]], holder: str, owner: str,
                   ttl: float) -> list[str]:
        return slotfiles.take(self, wanted, holder, owner, ttl)

    def free_slots(self, names: list[str], holder: str) -> None:
        slotfiles.free(self, names, holder)

    def slots(self) -> dict[str, dict[str, Any]]:
        return slotfiles.view(self)

    def holder(self, name: str) -> str | None:
        held = self._read(self.root / "locks" / f"{name}.json")
        return str(held["owner"]) if held and held["until"] > time.time() else None

    def tally(self, key: str, add: dict[str, float], latest: dict[str, float]) -> None:
        with self._exclusive(f"tally-{key}"):
            current = self.tallies(key)
            current.update({f: current.get(f, 0.0) + n for f, n in add.items()})
            self._write(self.root / "kv" / f"{keys.TALLY}{key}.json", {**current, **latest})

    def tallies(self, key: str) -> dict[str, float]:
        return {k: float(v) for k, v in
                (self._read(self.root / "kv" / f"{keys.TALLY}{key}.json") or {}).items()}

    def get(self, key: str) -> dict[str, Any] | None:
        return self._read(self.root / "kv" / f"{key}.json")

    def put(self, key: str, value: dict[str, Any]) -> None:
        self._write(self.root / "kv" / f"{key}.json", value)

    def delete(self, key: str) -> None:
        (self.root / "kv" / f"{key}.json").unlink(missing_ok=True)

    def put_many(self, values: dict[str, dict[str, Any]]) -> None:
        for key, value in values.items():
            self.put(key, value)

    def save_runs(self, records: list[RunRecord]) -> None:
        for record in records:
            self.save_run(record)

    def put_new(self, key: str, value: dict[str, Any]) -> dict[str, Any]:
        with self._exclusive(f"kv-{key}"):
            current = self.get(key)
            if current is None:
                self.put(key, value)
            return current or value

    def entries(self, prefix: str) -> dict[str, dict[str, Any]]:
        out = {}
        for n in os.listdir(self.root / "kv"):
            if n.startswith(prefix) and n.endswith(".json"):
                value = self._read(self.root / "kv" / n)
                if value is not None:
                    out[n[:-5]] = value
        return out

    def to_publish(self, limit: int, feed: str = keys.PUBLISH) -> list[str]:
        names = sorted(n for n in os.listdir(self.root / feed) if not n.startswith("."))
        ids = list(dict.fromkeys(n.partition("-")[2] for n in names))  # one entry per run
        return ids[:limit]

    def to_notify(self, item: str, at: float) -> None:
        (self.root / keys.NOTIFY / f"{int(at * 1_000_000):017d}-{item}").touch()
        self._marks += 1
        if self._marks % TRIM_EVERY == 0:  # the oldest past NOTIFY_KEEP go (one listing)
            for name in sorted(os.listdir(self.root / keys.NOTIFY))[:-keys.NOTIFY_KEEP]:
                with contextlib.suppress(FileNotFoundError):
                    (self.root / keys.NOTIFY / name).unlink()

    def published(self, run_ids: list[str], feed: str = keys.PUBLISH) -> None:
        done = set(run_ids)
        for n in os.listdir(self.root / feed):
            if n.partition("-")[2] in done:
                with contextlib.suppress(FileNotFoundError):
                    (self.root / feed / n).unlink()

    def forget(self, before: float, limit: int = 1000, skip: int = 0) -> tuple[int, int]:
        oldest = f"{int(before * 1000):012x}"  # run ids start with their creation time in hex
        feed = {n.partition("-")[2] for n in os.listdir(self.root / "publish")}
        names = sorted(n for n in os.listdir(self.root / "runs")
                       if n.endswith(".json") and not n.startswith(".")
                       and n.removesuffix(".json") < oldest)[skip:skip + limit]
        gone: list[str] = []
        for name in names:
            run_id = name.removesuffix(".json")
            if run_id in feed:
                continue
            with self._record_lock(run_id):
                record = self._load(run_id) or {}
                if record.get("state") in ACTIVE or record.get("created", 0) >= before:
                    continue
                live = (self.get(keys.output(run_id)) or {}).get("targets") or ()
                kv = [self.root / "kv" / f"{k}.json" for k in owned(run_id, record, live)]
                for path in (self.root / "runs" / name, self.root / "cancel" / run_id, *kv):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
            gone.append(run_id)
        self.published([*gone, *map(keys.late, gone)], keys.NOTIFY)  # their notify feed marks
        return len(gone), len(names)

    def runs_stamp(self) -> str | None:
        return stamp(self.root / "runs")

    def runs_page(self, job: str | None = None, before: Cursor | None = None, limit: int = 50,
                  state: str | None = None, since: float | None = None,
                  scan: int = 5000, until: float | None = None, where: RunFilter | None = None
                  ) -> tuple[list[RunRecord], Cursor | None]:
        where = dataclasses.replace(where or RunFilter(), state=state) if state else where
        since, until = where.window(since, until) if where else (since, until)
        # run ids sort by creation time: those of runs created after `until` are skipped unread
        top = f"{int((until + ID_SLACK) * 1000):012x}~" if until is not None else "~"
        names = sorted((n[:-5] for n in os.listdir(self.root / "runs")
                        if n.endswith(".json") and not n.startswith(".") and n < top),
                       reverse=True)
        out: list[RunRecord] = []
        last: Cursor | None = None
        for looked, rid in enumerate(n for n in names if before is None or n < before[1]):
            if len(out) == limit or looked == scan:
                return out, last
            record = self._load(rid)
            if record is None:
                continue
            created = float(record.get("created") or 0)
            if since is not None and created < since:
                return out, None  # run ids sort by creation time
            last = (created, rid)
            if (job is None or record.get("job") == job) and \
                    (until is None or created <= until) and (where is None or where.keeps(record)):
                out.append(RunRecord.from_json({k: record[k] for k in SUMMARY if k in record}))
        return out, None
