"""The state store: run records, cancel requests, beat's lock and per-schedule state.

Two implementations of one small protocol, chosen by settings: Redis (REDIS_URL; shared by
every machine that points at it) and files under the state directory (the embedded default;
shared by the processes of one machine). Values are JSON objects.

Run records: {"run_id", "job", "revision", "trigger", "state", "queue", "targets", "worker",
"created", "received", "started", "finished", "error", "retry_of", "schedule", "result",
"deliveries", "note"}. On Redis a record is a hash of JSON-encoded fields, so a state change
writes only what changed, and the worker's start (is it final? cancelled? count the delivery,
mark it STARTED) is one round trip.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import json
import os
import sys
import tempfile
import time
import types
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypeVar

from runner.errors import SourceError, StoreUnavailable

ACTIVE = ("PENDING", "RECEIVED", "STARTED", "RETRY")
FINAL = ("SUCCESS", "FAILURE", "REVOKED", "SKIPPED", "MISSED")
ENDED = ("SUCCESS", "FAILURE", "REVOKED")  # what a worker never runs again
# what a listing of runs shows (runs_page): everything but the result, which holds the output
SUMMARY = ("run_id", "job", "state", "queue", "trigger", "revision", "worker", "created",
           "received", "started", "finished", "error", "retry_of", "schedule",
           "scheduled_for", "limit", "deliveries", "targets", "note")
Cursor = tuple[float, str]  # (created, run_id) of the last run of a page
# a full or read-only state directory (EACCES: made read-only by chmod, for a non-root user)
UNWRITABLE = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)
STALE = 600.0  # seconds after which a temporary file left by a killed write is removed


@dataclass(frozen=True)
class Begin:
    """What a worker learns when it starts a run."""

    previous: str | None  # the state before (None: no record)
    cancelled: bool       # its cancel was requested: not started
    deliveries: int       # this delivery's number (1 the first time); 0 when not started

    @property
    def started(self) -> bool:
        return self.deliveries > 0


class Store(Protocol):
    def save_run(self, record: dict[str, Any]) -> None:
        """Writes a new run record, whole, and indexes it."""

    def update_run(self, run_id: str, fields: dict[str, Any]) -> None:
        """Sets `fields` of an existing run record."""

    def end_run(self, run_id: str, fields: dict[str, Any], expect: tuple[str, ...]) -> bool:
        """update_run, only while the record's state is one of `expect`, in one step (two
        reapers, or a reaper and the worker, never both end a run): whether it did."""

    def withdraw(self, run_id: str) -> None:
        """Removes the record of a run that was never queued (its message failed)."""

    def begin_run(self, run_id: str, job: str, worker: str, now: float) -> Begin:
        """Unless the run has started already (a second delivery of its message: it runs
        nothing), has ended or its cancel was requested: count the delivery and mark it
        STARTED by `worker` (creating and indexing the record if there is none)."""

    def mark_received(self, marks: list[tuple[str, float]]) -> None:
        """Each (run id, when) a worker took the run's message: PENDING -> RECEIVED, and the
        time kept as `received` whatever the state is by now (a worker writes these from a
        thread of its own, so its pool may have started the run already)."""

    def run(self, run_id: str) -> dict[str, Any] | None: ...

    def runs(self, job: str | None = None, limit: int = 20) -> list[dict[str, Any]]: ...

    def request_cancel(self, run_id: str, by: str) -> None:
        """Asks the run to stop; `by` says who asked, as its cancel reason names them."""

    def cancel_requested(self, run_id: str) -> str | None:
        """Who asked the run to stop, or None."""

    def lock(self, name: str, owner: str, ttl: float) -> bool:
        """Take or renew the lock `name` for `owner` for `ttl` seconds; False if held by
        another owner whose lease has not run out."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, value: dict[str, Any]) -> None: ...

    def put_many(self, values: dict[str, dict[str, Any]]) -> None:
        """put of each (key, value), in one round trip where the store has them; each key is
        written whole or not at all."""

    def save_runs(self, records: list[dict[str, Any]]) -> None:
        """save_run of each record, in one round trip where the store has them."""

    def put_new(self, key: str, value: dict[str, Any]) -> dict[str, Any]:
        """put, only if `key` is absent (one step): the value stored now."""

    def entries(self, prefix: str) -> dict[str, dict[str, Any]]:
        """Every entry whose key starts with `prefix`, by key (for a few, e.g. worker:)."""

    def ping(self) -> None: ...

    def to_publish(self, limit: int) -> list[str]:
        """Ids of finished runs the report publisher has not committed yet, oldest finish
        first. save_run adds a run here, in the same write, when its state is FINAL."""

    def published(self, run_ids: list[str]) -> None:
        """Takes `run_ids` off the to-publish feed (they are on the report branch)."""

    def forget(self, before: float, limit: int = 1000, skip: int = 0) -> tuple[int, int]:
        """Looks at up to `limit` run records created before `before`, oldest first, past the
        `skip` oldest of them, and deletes those that have ended and are on the report branch
        (off the to-publish feed), with their downloaded files: (deleted, looked at). The
        records it keeps stay first: the next call skips them (see forget_all)."""

    def runs_page(self, job: str | None = None, before: Cursor | None = None, limit: int = 50,
                  state: str | None = None, since: float | None = None,
                  scan: int = 5000) -> tuple[list[dict[str, Any]], Cursor | None]:
        """Up to `limit` run summaries (SUMMARY fields) created before the cursor `before`
        (and at or after `since`), newest first, of `job` and in `state` if given, looking at
        no more than `scan` runs; and the cursor of the next page (None: no more)."""

    def tally(self, key: str, add: dict[str, float], latest: dict[str, float]) -> None:
        """Adds `add` to the counters of tally `key` and sets its `latest` fields, at once
        (every process sees the same cumulative counts)."""

    def tallies(self, key: str) -> dict[str, float]:
        """The counters and fields of tally `key` ({} before the first `tally`)."""

    def holder(self, name: str) -> str | None:
        """Who holds the lock `name` now (its lease has not run out), or None."""

    def server(self) -> str:
        """Which server holds the data now: it changes when Redis restarts or fails over
        (writes of its last moments may be lost then)."""


def forget_all(store: Store, before: float, batch: int = 1000,
               stop: Callable[[], bool] = lambda: False) -> int:
    """Deletes every run record store.forget would, `batch` at a time, paging past the old
    records it must keep (still running, not on the report branch yet), so that they never
    hide the expired ones behind them: how many it deleted."""
    skip = deleted = 0
    while not stop():
        n, looked = store.forget(before, batch, skip)
        deleted, skip = deleted + n, skip + looked - n
        if looked < batch:
            break
    return deleted


def _begin(record: dict[str, Any] | None, cancelled: bool, run_id: str, job: str,
           worker: str, now: float) -> tuple[Begin, dict[str, Any] | None]:
    """begin_run on a whole record: the verdict and the record to write (None: none)."""
    previous = record.get("state") if record else None
    if previous in ENDED or previous == "STARTED" or cancelled:
        return Begin(previous, cancelled and previous not in (*ENDED, "STARTED"), 0), None
    record = record or {"run_id": run_id, "job": job, "created": now}
    deliveries = int(record.get("deliveries", 0)) + 1
    record.update(state="STARTED", started=now, worker=worker, deliveries=deliveries)
    return Begin(previous, False, deliveries), record


P = ParamSpec("P")
R = TypeVar("R")


def _unavailable(f: Callable[P, R]) -> Callable[P, R]:
    """f, with any error of redis-py, or an OSError of a full or read-only state directory,
    raised as StoreUnavailable: callers catch runner's error, never redis's or a raw OSError."""

    @functools.wraps(f)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return f(*args, **kwargs)
        except OSError as e:  # FileStore's: a full or read-only disk is an outage too
            root = getattr(args[0], "root", None) if args else None
            if root is None or e.errno not in UNWRITABLE:
                raise
            raise unwritable(root, e) from None
        except Exception as e:  # redis is imported by then (RedisStore.__init__)
            redis = sys.modules.get("redis")
            if redis is not None and isinstance(e, redis.RedisError):
                raise StoreUnavailable(f"Redis is unavailable: {e}") from None
            raise

    return call


T = TypeVar("T")


def unwritable(root: Path, e: OSError) -> StoreUnavailable:
    return StoreUnavailable(f"the state directory {root} cannot be written ({e.strerror}): "
                            "free space or make it writable")


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


def _translated(cls: type[T]) -> type[T]:
    """Wraps each public method of a store with _unavailable, in one place."""
    for name, value in list(vars(cls).items()):
        if isinstance(value, types.FunctionType) and not name.startswith("_"):
            setattr(cls, name, _unavailable(value))
    return cls


@_translated
class RedisStore:
    _RENEW = """
    local v = redis.call('GET', KEYS[1])
    if v == false or v == ARGV[1] then
      redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1
    end
    return 0"""
    # KEYS: record, cancel flag, index, job index; ARGV: worker, now, job, run id (JSON), run id
    _BEGIN = """
    local previous = redis.call('HGET', KEYS[1], 'state')
    if previous == '"SUCCESS"' or previous == '"FAILURE"' or previous == '"REVOKED"'
        or previous == '"STARTED"' then
      return {previous, 0, 0}
    end
    if redis.call('EXISTS', KEYS[2]) == 1 then return {previous, 1, 0} end
    if previous == false then
      redis.call('HSET', KEYS[1], 'run_id', ARGV[4], 'job', ARGV[3], 'created', ARGV[2])
      redis.call('ZADD', KEYS[3], ARGV[2], ARGV[5])
      redis.call('ZADD', KEYS[4], ARGV[2], ARGV[5])
    end
    local n = redis.call('HINCRBY', KEYS[1], 'deliveries', 1)
    redis.call('HSET', KEYS[1], 'state', '"STARTED"', 'started', ARGV[2], 'worker', ARGV[1])
    redis.call('PUBLISH', ARGV[6], '{"kind":"run","run_id":' .. ARGV[4] .. ',"state":"STARTED"}')
    return {previous, 0, n}"""
    # KEYS: record, publish feed; ARGV: events channel, event, feed score ('' = not final),
    # run id, the states it must be in ('' = any; JSON strings, comma-separated), then field,
    # value, ... (one call: a pipeline of three costs the client more)
    _UPDATE = """
    if ARGV[5] ~= '' then
      local state = redis.call('HGET', KEYS[1], 'state')
      if not state or not string.find(ARGV[5], state, 1, true) then return 0 end
    end
    redis.call('HSET', KEYS[1], unpack(ARGV, 6))
    if ARGV[3] ~= '' then redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4]) end
    redis.call('PUBLISH', ARGV[1], ARGV[2])
    return 1"""
    # KEYS: index, publish feed; ARGV: created before, limit, key prefix, skip
    _FORGET = """
    local active = {['"PENDING"'] = 1, ['"RECEIVED"'] = 1, ['"STARTED"'] = 1, ['"RETRY"'] = 1}
    local n = 0
    local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1],
                           'LIMIT', ARGV[4], ARGV[2])
    for _, id in ipairs(ids) do
      local key = ARGV[3] .. 'run:' .. id
      local state = redis.call('HGET', key, 'state')
      if not (state and active[state]) and not redis.call('ZSCORE', KEYS[2], id) then
        local job = redis.call('HGET', key, 'job')
        local ok, result = pcall(cjson.decode, redis.call('HGET', key, 'result') or 'null')
        local targets = ok and type(result) == 'table' and result['targets']
        for _, t in pairs(type(targets) == 'table' and targets or {}) do
          local downloads = type(t) == 'table' and t['downloads']
          for _, d in ipairs(type(downloads) == 'table' and downloads or {}) do
            if type(d) == 'table' and type(d['sha256']) == 'string' then
              redis.call('DEL', ARGV[3] .. 'kv:download:' .. id .. ':' .. d['sha256'])
            end
          end
        end
        redis.call('DEL', key, ARGV[3] .. 'cancel:' .. id)
        redis.call('ZREM', KEYS[1], id)
        local jok, name = pcall(cjson.decode, job or 'null')
        if jok and type(name) == 'string' then
          redis.call('ZREM', ARGV[3] .. 'runs:' .. name, id)
        end
        n = n + 1
      end
    end
    return {n, #ids}"""
    # KEYS: the records; ARGV: the events channel, then (when, run id as JSON) per record
    _RECEIVED = """
    for i, key in ipairs(KEYS) do
      local state = redis.call('HGET', key, 'state')
      if state then
        redis.call('HSETNX', key, 'received', ARGV[2 * i])
        if state == '"PENDING"' then
          redis.call('HSET', key, 'state', '"RECEIVED"')
          redis.call('PUBLISH', ARGV[1],
                     '{"kind":"run","run_id":' .. ARGV[2 * i + 1] .. ',"state":"RECEIVED"}')
        end
      end
    end
    return 0"""

    def __init__(self, url: str, prefix: str = "runner:") -> None:
        import redis
        from redis.sentinel import MasterNotFoundError

        from runner.redis_url import client
        from runner.settings import masked_url

        try:
            self.r = client(url, decode_responses=True, socket_connect_timeout=5)
            self.r.ping()
        except ValueError:  # its message may quote the URL, password and all
            raise SourceError(f"REDIS_URL={masked_url(url)!r} is not a Redis URL; for example "
                              "redis://localhost:6379/0") from None
        except MasterNotFoundError:  # its message lists every Sentinel client: not a sentence
            raise SourceError(f"no Sentinel at REDIS_URL={masked_url(url)!r} answers with a "
                              "master of that master_name; start the Sentinels, or check "
                              "master_name and the Sentinels' addresses") from None
        except redis.RedisError as e:
            raise SourceError(f"cannot reach Redis at REDIS_URL={masked_url(url)!r}: {e}; "
                              "start it, or unset REDIS_URL for the embedded default") from None
        self.p = prefix
        self.events = f"{prefix}events"  # the channel each run and entry write publishes on
        self._renew = self.r.register_script(self._RENEW)
        self._begin = self.r.register_script(self._BEGIN)
        self._received = self.r.register_script(self._RECEIVED)
        self._update = self.r.register_script(self._UPDATE)
        self._forget = self.r.register_script(self._FORGET)

    def ping(self) -> None:
        self.r.ping()

    def server(self) -> str:
        return str(self.r.info("server")["run_id"])

    def _run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """EVALSHA of a registered script: 0.02 ms of CPU less per call than calling the
        Script, which loads it again when Redis has lost it (a restart, SCRIPT FLUSH)."""
        import redis

        try:
            return self.r.execute_command(  # type: ignore[no-untyped-call]
                "EVALSHA", script.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return script(keys=keys, args=args)

    def save_run(self, record: dict[str, Any]) -> None:
        self.save_runs([record])

    def save_runs(self, records: list[dict[str, Any]]) -> None:
        pipe = self.r.pipeline(transaction=False)
        for record in records:
            self._save(pipe, record)
        pipe.execute()

    def _save(self, pipe: Any, record: dict[str, Any]) -> None:
        rid = record["run_id"]
        pipe.hset(f"{self.p}run:{rid}", mapping={k: json.dumps(v) for k, v in record.items()})
        pipe.zadd(f"{self.p}runs", {rid: record.get("created", 0)})
        pipe.zadd(f"{self.p}runs:{record.get('job', '')}", {rid: record.get("created", 0)})
        if record.get("state") in FINAL:  # the report publisher's feed, in the same round trip
            pipe.zadd(f"{self.p}publish", {rid: _finished(record)})
        pipe.publish(self.events, _event(rid, record.get("state")))

    def update_run(self, run_id: str, fields: dict[str, Any]) -> None:
        self.end_run(run_id, fields, ())

    def end_run(self, run_id: str, fields: dict[str, Any], expect: tuple[str, ...]) -> bool:
        final = fields.get("state") in FINAL  # joins the report publisher's feed, same call
        args = [self.events, _event(run_id, fields.get("state")),
                repr(_finished(fields)) if final else "", run_id,
                ",".join(json.dumps(s) for s in expect)]
        for k, v in fields.items():
            args += [k, json.dumps(v)]
        return bool(self._run(self._update, [f"{self.p}run:{run_id}", f"{self.p}publish"],
                              args))

    def withdraw(self, run_id: str) -> None:
        job = self.r.hget(f"{self.p}run:{run_id}", "job")
        pipe = self.r.pipeline(transaction=False)
        pipe.delete(f"{self.p}run:{run_id}")
        pipe.zrem(f"{self.p}runs", run_id)
        if job:
            pipe.zrem(f"{self.p}runs:{json.loads(job)}", run_id)
        pipe.execute()

    def begin_run(self, run_id: str, job: str, worker: str, now: float) -> Begin:
        previous, cancelled, n = self._run(
            self._begin, [f"{self.p}run:{run_id}", f"{self.p}cancel:{run_id}", f"{self.p}runs",
                          f"{self.p}runs:{job}"],
            [json.dumps(worker), repr(now), json.dumps(job), json.dumps(run_id), run_id,
             self.events])
        return Begin(json.loads(previous) if previous else None, bool(cancelled), int(n))

    def mark_received(self, marks: list[tuple[str, float]]) -> None:
        args = [self.events]
        for run_id, now in marks:
            args += [repr(now), json.dumps(run_id)]
        # one script call for the batch (in a pipeline redis-py asks SCRIPT EXISTS first)
        self._run(self._received, [f"{self.p}run:{run_id}" for run_id, _ in marks], args)

    @staticmethod
    def _decode(raw: Any) -> dict[str, Any] | None:
        return {str(k): json.loads(v) for k, v in raw.items()} if raw else None

    def run(self, run_id: str) -> dict[str, Any] | None:
        return self._decode(self.r.hgetall(f"{self.p}run:{run_id}"))

    def runs(self, job: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        key = f"{self.p}runs:{job}" if job else f"{self.p}runs"
        pipe = self.r.pipeline(transaction=False)
        for rid in self.r.zrevrange(key, 0, limit - 1):
            pipe.hgetall(f"{self.p}run:{rid!s}")
        return [r for r in map(self._decode, pipe.execute()) if r]

    def request_cancel(self, run_id: str, by: str) -> None:
        self.r.set(f"{self.p}cancel:{run_id}", by, ex=7 * 86400)

    def cancel_requested(self, run_id: str) -> str | None:
        by = self.r.get(f"{self.p}cancel:{run_id}")
        return None if by is None else str(by) or "runner cancel"

    def lock(self, name: str, owner: str, ttl: float) -> bool:
        return bool(self._renew(keys=[f"{self.p}lock:{name}"], args=[owner, int(ttl * 1000)]))

    def get(self, key: str) -> dict[str, Any] | None:
        raw = self.r.get(f"{self.p}kv:{key}")
        return json.loads(raw) if raw else None

    def entries(self, prefix: str) -> dict[str, dict[str, Any]]:
        keys = [str(k) for k in self.r.scan_iter(match=f"{self.p}kv:{prefix}*", count=1000)]
        raws = self.r.mget(keys) if keys else []
        return {k[len(self.p) + 3:]: json.loads(v) for k, v in zip(keys, raws, strict=True)
                if v}

    def put(self, key: str, value: dict[str, Any]) -> None:
        self.put_many({key: value})

    def put_many(self, values: dict[str, dict[str, Any]]) -> None:
        pipe = self.r.pipeline(transaction=False)
        for key, value in values.items():
            pipe.set(f"{self.p}kv:{key}", json.dumps(value))
            pipe.publish(self.events, json.dumps({"kind": "entry", "key": key}))
        pipe.execute()

    def put_new(self, key: str, value: dict[str, Any]) -> dict[str, Any]:
        pipe = self.r.pipeline(transaction=True)
        pipe.set(f"{self.p}kv:{key}", json.dumps(value), nx=True)
        pipe.get(f"{self.p}kv:{key}")
        return dict(json.loads(pipe.execute()[1]))

    def to_publish(self, limit: int) -> list[str]:
        return [str(i) for i in self.r.zrange(f"{self.p}publish", 0, limit - 1)]

    def published(self, run_ids: list[str]) -> None:
        if run_ids:
            self.r.zrem(f"{self.p}publish", *run_ids)

    def forget(self, before: float, limit: int = 1000, skip: int = 0) -> tuple[int, int]:
        deleted, looked = self._forget(keys=[f"{self.p}runs", f"{self.p}publish"],
                                       args=[repr(before), limit, self.p, skip])
        return int(deleted), int(looked)

    def tally(self, key: str, add: dict[str, float], latest: dict[str, float]) -> None:
        pipe = self.r.pipeline(transaction=True)  # MULTI: no reader sees half a batch
        for field_, n in add.items():
            pipe.hincrbyfloat(f"{self.p}tally:{key}", field_, n)
        if latest:
            pipe.hset(f"{self.p}tally:{key}", mapping=latest)  # type: ignore[arg-type]
        pipe.execute()

    def tallies(self, key: str) -> dict[str, float]:
        return {str(k): float(v) for k, v in self.r.hgetall(f"{self.p}tally:{key}").items()}

    def holder(self, name: str) -> str | None:
        owner = self.r.get(f"{self.p}lock:{name}")
        return str(owner) if owner else None

    def runs_page(self, job: str | None = None, before: Cursor | None = None, limit: int = 50,
                  state: str | None = None, since: float | None = None,
                  scan: int = 5000) -> tuple[list[dict[str, Any]], Cursor | None]:
        key = f"{self.p}runs:{job}" if job else f"{self.p}runs"
        top = "+inf" if before is None else repr(before[0])
        low = "-inf" if since is None else repr(since)
        out: list[dict[str, Any]] = []
        offset = looked = 0
        last: Cursor | None = None
        while looked < scan:
            want = min(scan - looked, limit + 1 if state is None else max(4 * limit, 200))
            batch: list[tuple[str, float]] = list(self.r.zrevrangebyscore(  # type: ignore[arg-type]
                key, top, low, start=offset, num=want, withscores=True))
            exhausted = len(batch) < want
            offset += len(batch)
            if before is not None:  # a tie on the cursor's time: only ids below it
                batch = [(i, t) for i, t in batch if t < before[0] or str(i) < before[1]]
            pipe = self.r.pipeline(transaction=False)
            for rid, _t in batch:
                pipe.hmget(f"{self.p}run:{rid}", SUMMARY)
            for (rid, created), values in zip(batch, pipe.execute(), strict=True):
                if len(out) == limit:
                    return out, last
                looked += 1
                last = (float(created), str(rid))
                if values[2] is None or (state and json.loads(values[2]) != state):
                    continue
                out.append({k: json.loads(v) for k, v in zip(SUMMARY, values, strict=True)
                            if v is not None})
            if exhausted:
                return out, None
        return out, last


@_translated
class FileStore:
    """Files under `root`, written atomically; safe for several processes of one machine.
    A full or read-only disk raises StoreUnavailable (as Redis being away does)."""

    FOLDERS = ("runs", "cancel", "kv", "locks", "publish")

    def __init__(self, root: Path) -> None:
        self.root = root
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

    def save_run(self, record: dict[str, Any]) -> None:
        self._write(self.root / "runs" / f"{record['run_id']}.json", record)
        if record.get("state") in FINAL:  # the report publisher's feed: a marker file
            stamp = int(_finished(record) * 1_000_000)
            (self.root / "publish" / f"{stamp:017d}-{record['run_id']}").touch()

    def _record_lock(self, run_id: str) -> contextlib.AbstractContextManager[None]:
        """Serializes read-modify-writes of one run record across processes (the worker's
        main process, its pool, `runner cancel`, the API): one of 64 striped locks."""
        return self._exclusive(f"runs-{zlib.crc32(run_id.encode()) % 64}")

    def update_run(self, run_id: str, fields: dict[str, Any]) -> None:
        self.end_run(run_id, fields, ())

    def end_run(self, run_id: str, fields: dict[str, Any], expect: tuple[str, ...]) -> bool:
        with self._record_lock(run_id):
            record = self.run(run_id)
            if expect and (record is None or record.get("state") not in expect):
                return False
            record = record or {"run_id": run_id}
            record.update(fields)
            self.save_run(record)
            return True

    def withdraw(self, run_id: str) -> None:
        if self.run(run_id) is not None:  # the run id names a record file
            with contextlib.suppress(FileNotFoundError):
                (self.root / "runs" / f"{run_id}.json").unlink()

    def begin_run(self, run_id: str, job: str, worker: str, now: float) -> Begin:
        with self._record_lock(run_id):
            begin, record = _begin(self.run(run_id),
                                   self.cancel_requested(run_id) is not None, run_id, job,
                                   worker, now)
            if record is not None:
                self.save_run(record)
        return begin

    def mark_received(self, marks: list[tuple[str, float]]) -> None:
        for run_id, now in marks:
            with self._record_lock(run_id):
                record = self.run(run_id)
                if record is not None:
                    record.setdefault("received", now)
                    if record.get("state") == "PENDING":
                        record["state"] = "RECEIVED"
                    self.save_run(record)

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

    def holder(self, name: str) -> str | None:
        held = self._read(self.root / "locks" / f"{name}.json")
        return str(held["owner"]) if held and held["until"] > time.time() else None

    def tally(self, key: str, add: dict[str, float], latest: dict[str, float]) -> None:
        with self._exclusive(f"tally-{key}"):
            current = self.tallies(key)
            for field_, n in add.items():
                current[field_] = current.get(field_, 0.0) + n
            self._write(self.root / "kv" / f"tally:{key}.json", {**current, **latest})

    def tallies(self, key: str) -> dict[str, float]:
        return {k: float(v) for k, v in
                (self._read(self.root / "kv" / f"tally:{key}.json") or {}).items()}

    def get(self, key: str) -> dict[str, Any] | None:
        return self._read(self.root / "kv" / f"{key}.json")

    def put(self, key: str, value: dict[str, Any]) -> None:
        self._write(self.root / "kv" / f"{key}.json", value)

    def put_many(self, values: dict[str, dict[str, Any]]) -> None:
        for key, value in values.items():
            self.put(key, value)

    def save_runs(self, records: list[dict[str, Any]]) -> None:
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

    def forget(self, before: float, limit: int = 1000, skip: int = 0) -> tuple[int, int]:
        oldest = f"{int(before * 1000):012x}"  # run ids start with their creation time in hex
        feed = {n.partition("-")[2] for n in os.listdir(self.root / "publish")}
        names = sorted(n for n in os.listdir(self.root / "runs")
                       if n.endswith(".json") and not n.startswith(".")
                       and n.removesuffix(".json") < oldest)[skip:skip + limit]
        n = 0
        for name in names:
            run_id = name.removesuffix(".json")
            if run_id in feed:
                continue
            with self._record_lock(run_id):
                record = self.run(run_id) or {}
                if record.get("state") in ACTIVE or record.get("created", 0) >= before:
                    continue
                kv = self.root / "kv"
                for path in (self.root / "runs" / name, self.root / "cancel" / run_id,
                             *(kv / f"{download_key(run_id, sha)}.json"
                               for sha in _downloaded(record.get("result")))):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
            n += 1
        return n, len(names)

    def runs_page(self, job: str | None = None, before: Cursor | None = None, limit: int = 50,
                  state: str | None = None, since: float | None = None,
                  scan: int = 5000) -> tuple[list[dict[str, Any]], Cursor | None]:
        names = sorted((n[:-5] for n in os.listdir(self.root / "runs")
                        if n.endswith(".json") and not n.startswith(".")), reverse=True)
        out: list[dict[str, Any]] = []
        last: Cursor | None = None
        for looked, rid in enumerate(n for n in names if before is None or n < before[1]):
            if len(out) == limit or looked == scan:
                return out, last
            record = self.run(rid)
            if record is None:
                continue
            created = float(record.get("created") or 0)
            if since is not None and created < since:
                return out, None  # run ids sort by creation time
            last = (created, rid)
            if (job is None or record.get("job") == job) and \
                    (state is None or record.get("state") == state):
                out.append({k: record[k] for k in SUMMARY if k in record})
        return out, None


def download_key(run_id: str, sha256: str) -> str:
    """The store key of a file a run downloaded (forget() deletes it with the run)."""
    return f"download:{run_id}:{sha256}"


def _downloaded(result: dict[str, Any] | None) -> list[str]:
    """The sha256 of each file a run's result names as downloaded."""
    return [d["sha256"] for t in ((result or {}).get("targets") or {}).values()
            for d in t.get("downloads") or () if d.get("sha256")]


def _event(run_id: str, state: str | None) -> str:
    return json.dumps({"kind": "run", "run_id": run_id, "state": state})


def _finished(record: dict[str, Any]) -> float:
    return float(record.get("finished") or record.get("created") or time.time())


def open_store(redis_url: str, state_dir: Path) -> Store:
    return RedisStore(redis_url) if redis_url else FileStore(state_dir / "state")
