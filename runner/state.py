"""The state store: run records, cancel requests, beat's lock and per-schedule state.

Two implementations of one small protocol, chosen by settings: Redis (REDIS_URL; shared by
every machine that points at it) and files under the state directory (the embedded default;
shared by the processes of one machine). Values are JSON objects.

Run records: {"run_id", "job", "revision", "trigger", "state", "queue", "targets", "worker",
"created", "received", "started", "finished", "error", "retry_of", "schedule", "result"}.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from runner.errors import SourceError

ACTIVE = ("PENDING", "RECEIVED", "STARTED", "RETRY")
FINAL = ("SUCCESS", "FAILURE", "REVOKED", "SKIPPED", "MISSED")


class Store(Protocol):
    def save_run(self, record: dict[str, Any], new: bool = True) -> None:
        """Writes a run record whole; `new=False` for a record already indexed."""

    def run(self, run_id: str) -> dict[str, Any] | None: ...

    def runs(self, job: str | None = None, limit: int = 20) -> list[dict[str, Any]]: ...

    def request_cancel(self, run_id: str) -> None: ...

    def cancel_requested(self, run_id: str) -> bool: ...

    def run_to_start(self, run_id: str) -> tuple[dict[str, Any] | None, bool]:
        """The run's record and whether its cancel was requested (one round trip)."""

    def lock(self, name: str, owner: str, ttl: float) -> bool:
        """Take or renew the lock `name` for `owner` for `ttl` seconds; False if held by
        another owner whose lease has not run out."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, value: dict[str, Any]) -> None: ...

    def ping(self) -> None: ...

    def to_publish(self, limit: int) -> list[str]:
        """Ids of finished runs the report publisher has not committed yet, oldest finish
        first. save_run adds a run here, in the same write, when its state is FINAL."""

    def published(self, run_ids: list[str]) -> None:
        """Takes `run_ids` off the to-publish feed (they are on the report branch)."""


def update(store: Store, run_id: str, **fields: Any) -> dict[str, Any]:
    record = store.run(run_id)
    new = record is None
    record = record or {"run_id": run_id}
    record.update(fields)
    store.save_run(record, new)
    return record


class RedisStore:
    _RENEW = """
    local v = redis.call('GET', KEYS[1])
    if v == false or v == ARGV[1] then
      redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1
    end
    return 0"""

    def __init__(self, url: str, prefix: str = "runner:") -> None:
        import redis

        try:
            self.r = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=5)
            self.r.ping()
        except ValueError as e:
            raise SourceError(f"REDIS_URL={url!r} is not a Redis URL ({e}); for example "
                              "redis://localhost:6379/0") from None
        except redis.RedisError as e:
            raise SourceError(f"cannot reach Redis at REDIS_URL={url!r}: {e}; start it, or "
                              "unset REDIS_URL for the embedded default") from None
        self.p = prefix
        self._renew = self.r.register_script(self._RENEW)

    def ping(self) -> None:
        self.r.ping()

    def save_run(self, record: dict[str, Any], new: bool = True) -> None:
        rid = record["run_id"]
        final = record.get("state") in FINAL
        if not new and not final:
            self.r.set(f"{self.p}run:{rid}", json.dumps(record))
            return
        pipe = self.r.pipeline(transaction=False)
        pipe.set(f"{self.p}run:{rid}", json.dumps(record))
        if new:
            pipe.zadd(f"{self.p}runs", {rid: record.get("created", 0)})
            pipe.zadd(f"{self.p}runs:{record.get('job', '')}", {rid: record.get("created", 0)})
        if final:  # the report publisher's feed, in the same round trip
            pipe.zadd(f"{self.p}publish", {rid: _finished(record)})
        pipe.execute()

    def run(self, run_id: str) -> dict[str, Any] | None:
        raw = self.r.get(f"{self.p}run:{run_id}")
        return json.loads(raw) if raw else None

    def runs(self, job: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        key = f"{self.p}runs:{job}" if job else f"{self.p}runs"
        ids = [str(i) for i in self.r.zrevrange(key, 0, limit - 1)]
        raws = self.r.mget([self.p + "run:" + i for i in ids]) if ids else []
        return [json.loads(r) for r in raws if r]

    def run_to_start(self, run_id: str) -> tuple[dict[str, Any] | None, bool]:
        pipe = self.r.pipeline(transaction=False)
        pipe.get(f"{self.p}run:{run_id}")
        pipe.exists(f"{self.p}cancel:{run_id}")
        raw, cancelled = pipe.execute()
        return (json.loads(raw) if raw else None), bool(cancelled)

    def request_cancel(self, run_id: str) -> None:
        self.r.set(f"{self.p}cancel:{run_id}", "1", ex=7 * 86400)

    def cancel_requested(self, run_id: str) -> bool:
        return bool(self.r.exists(f"{self.p}cancel:{run_id}"))

    def lock(self, name: str, owner: str, ttl: float) -> bool:
        return bool(self._renew(keys=[f"{self.p}lock:{name}"], args=[owner, int(ttl * 1000)]))

    def get(self, key: str) -> dict[str, Any] | None:
        raw = self.r.get(f"{self.p}kv:{key}")
        return json.loads(raw) if raw else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        self.r.set(f"{self.p}kv:{key}", json.dumps(value))

    def to_publish(self, limit: int) -> list[str]:
        return [str(i) for i in self.r.zrange(f"{self.p}publish", 0, limit - 1)]

    def published(self, run_ids: list[str]) -> None:
        if run_ids:
            self.r.zrem(f"{self.p}publish", *run_ids)


class FileStore:
    """Files under `root`, written atomically; safe for several processes of one machine."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for d in ("runs", "cancel", "kv", "locks", "publish"):
            (root / d).mkdir(parents=True, exist_ok=True)

    def ping(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise OSError(f"{self.root} is not writable")

    def _write(self, path: Path, value: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "w") as f:
            json.dump(value, f)
        os.replace(tmp, path)

    def _read(self, path: Path) -> dict[str, Any] | None:
        try:
            return dict(json.loads(path.read_text()))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def save_run(self, record: dict[str, Any], new: bool = True) -> None:
        self._write(self.root / "runs" / f"{record['run_id']}.json", record)
        if record.get("state") in FINAL:  # the report publisher's feed: a marker file
            stamp = int(_finished(record) * 1_000_000)
            (self.root / "publish" / f"{stamp:017d}-{record['run_id']}").touch()

    def run(self, run_id: str) -> dict[str, Any] | None:
        if "/" in run_id or run_id.startswith("."):
            return None
        return self._read(self.root / "runs" / f"{run_id}.json")

    def runs(self, job: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        names = sorted((n for n in os.listdir(self.root / "runs") if n.endswith(".json")),
                       reverse=True)  # run ids sort by creation time
        out = []
        for n in names:
            record = self._read(self.root / "runs" / n)
            if record and (job is None or record.get("job") == job):
                out.append(record)
                if len(out) >= limit:
                    break
        return out

    def run_to_start(self, run_id: str) -> tuple[dict[str, Any] | None, bool]:
        return self.run(run_id), self.cancel_requested(run_id)

    def request_cancel(self, run_id: str) -> None:
        (self.root / "cancel" / run_id).touch()

    def cancel_requested(self, run_id: str) -> bool:
        return (self.root / "cancel" / run_id).exists()

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

    def get(self, key: str) -> dict[str, Any] | None:
        return self._read(self.root / "kv" / f"{key}.json")

    def put(self, key: str, value: dict[str, Any]) -> None:
        self._write(self.root / "kv" / f"{key}.json", value)

    def to_publish(self, limit: int) -> list[str]:
        names = sorted(n for n in os.listdir(self.root / "publish") if not n.startswith("."))
        ids = list(dict.fromkeys(n.partition("-")[2] for n in names))  # one entry per run
        return ids[:limit]

    def published(self, run_ids: list[str]) -> None:
        done = set(run_ids)
        for n in os.listdir(self.root / "publish"):
            if n.partition("-")[2] in done:
                with contextlib.suppress(FileNotFoundError):
                    (self.root / "publish" / n).unlink()


def _finished(record: dict[str, Any]) -> float:
    return float(record.get("finished") or record.get("created") or time.time())


def open_store(redis_url: str, state_dir: Path) -> Store:
    return RedisStore(redis_url) if redis_url else FileStore(state_dir / "state")
