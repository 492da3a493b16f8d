"""The store on Redis (REDIS_URL; shared by every machine that points at it).

A run record is a hash of JSON-encoded fields, so a state change writes only what changed, and
the worker's start (is it final? cancelled? count the delivery, mark it STARTED) is one round
trip: the Lua scripts of lua/*.lua, with their state names and keys formatted in from RunState
and keys.py when loaded. Every redis-py error leaves a method as StoreUnavailable.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import AsyncIterator, Sequence
from importlib import resources
from typing import Any

from runner.errors import SourceError, StoreUnavailable
from runner.runs import FINAL, RunRecord, RunState
from runner.store import keys, slots
from runner.store.base import SUMMARY, Begin, Cursor, RunFilter, event, finished, translated
from runner.store.changes import redis_changes

# what a script's {NAME} stands for: a run state, or a key of the backends' layout
_TOKENS = {**{s.name: s.value for s in RunState},
           "RUN": keys.RUN, "RUNS": keys.RUNS, "CANCEL": keys.CANCEL, "KV": keys.KV,
           "NOTIFY": keys.NOTIFY, "OUTBOX": keys.outbox(""), "KEEP": str(keys.NOTIFY_KEEP),
           "LATE": keys.late(""), "OUTPUT": keys.output("")}


def script(name: str) -> str:
    """The Lua script lua/`name`.lua, its {NAME} tokens replaced (a Lua table's braces never
    hold an upper-case word alone)."""
    text = resources.files("runner.store").joinpath("lua", f"{name}.lua").read_text()
    return re.sub(r"\{([A-Z]+)\}", lambda m: _TOKENS[m[1]], text)


def _redis_error(_store: Any, e: Exception) -> StoreUnavailable | None:
    """A redis-py error as runner's (redis is imported by then: RedisStore.__init__)."""
    import redis

    return StoreUnavailable(f"Redis is unavailable: {e}") if isinstance(e, redis.RedisError) \
        else None


@translated(_redis_error)
class RedisStore:
    """The store on the Redis at `url`, its keys under `prefix`."""

    def __init__(self, url: str, prefix: str = "runner:") -> None:
        import redis
        from redis.sentinel import MasterNotFoundError

        from runner.adapters.redis_url import client
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
        self.url, self.p = url, prefix
        self.events = f"{prefix}{keys.EVENTS}"  # the channel each run and entry write publishes on
        self._renew = self.r.register_script(script("renew"))
        self._begin = self.r.register_script(script("begin"))
        self._received = self.r.register_script(script("received"))
        self._update = self.r.register_script(script("update"))
        self._forget = self.r.register_script(script("forget"))

    def ping(self) -> None:
        self.r.ping()

    def server(self) -> str:
        return str(self.r.info("server")["run_id"])

    def changes(self) -> AsyncIterator[dict[str, Any]]:
        """What is published on the events channel (see Store.changes)."""
        return redis_changes(self.url, self.events)

    def _run(self, lua: Any, names: list[str], args: list[Any]) -> Any:
        """EVALSHA of a registered script (its digest is known: nothing to hash per call);
        calling the Script loads it again when Redis has lost it (a restart, SCRIPT FLUSH)."""
        import redis

        try:
            return self.r.execute_command(  # type: ignore[no-untyped-call]
                "EVALSHA", lua.sha, len(names), *names, *args)
        except redis.exceptions.NoScriptError:
            return lua(keys=names, args=args)

    def save_run(self, record: RunRecord) -> None:
        self.save_runs([record])

    def save_runs(self, records: list[RunRecord]) -> None:
        pipe = self.r.pipeline(transaction=False)
        for record in records:
            self._save(pipe, record.to_json())
        pipe.execute()

    def _save(self, pipe: Any, record: dict[str, Any]) -> None:
        rid = record["run_id"]
        pipe.hset(f"{self.p}{keys.RUN}{rid}", mapping={k: json.dumps(v) for k, v in record.items()})
        pipe.zadd(f"{self.p}{keys.RUNS}", {rid: record.get("created", 0)})
        pipe.zadd(f"{self.p}{keys.RUNS}:{record.get('job', '')}", {rid: record.get("created", 0)})
        if record.get("state") in FINAL:  # the report publisher's feed, in the same round trip
            pipe.zadd(f"{self.p}{keys.PUBLISH}", {rid: finished(record)})
            pipe.zadd(f"{self.p}{keys.NOTIFY}", {rid: finished(record)})
            pipe.zremrangebyrank(f"{self.p}{keys.NOTIFY}", 0, -keys.NOTIFY_KEEP - 1)
        pipe.publish(self.events, event(rid, record.get("state")))

    def update_run(self, run_id: str, fields: dict[str, Any]) -> None:
        self.end_run(run_id, fields, ())

    def end_run(self, run_id: str, fields: dict[str, Any], expect: tuple[str, ...]) -> bool:
        final = fields.get("state") in FINAL  # joins the report publisher's feed, same call
        args = [self.events, event(run_id, fields.get("state")),
                repr(finished(fields)) if final else "", run_id,
                ",".join(json.dumps(s) for s in expect)]
        for k, v in fields.items():
            args += [k, json.dumps(v)]
        return bool(self._run(self._update,
                              [f"{self.p}{keys.RUN}{run_id}", f"{self.p}{keys.PUBLISH}",
                               f"{self.p}{keys.NOTIFY}"], args))

    def withdraw(self, run_id: str) -> None:
        job = self.r.hget(f"{self.p}{keys.RUN}{run_id}", "job")
        pipe = self.r.pipeline(transaction=False)
        pipe.delete(f"{self.p}{keys.RUN}{run_id}")
        pipe.zrem(f"{self.p}{keys.RUNS}", run_id)
        if job:
            pipe.zrem(f"{self.p}{keys.RUNS}:{json.loads(job)}", run_id)
        pipe.execute()

    def begin_run(self, run_id: str, job: str, worker: str, now: float) -> Begin:
        previous, cancelled, n = self._run(
            self._begin, [f"{self.p}{keys.RUN}{run_id}", f"{self.p}{keys.CANCEL}{run_id}",
                          f"{self.p}{keys.RUNS}", f"{self.p}{keys.RUNS}:{job}"],
            [json.dumps(worker), repr(now), json.dumps(job), json.dumps(run_id), run_id,
             self.events])
        return Begin(json.loads(previous) if previous else None, bool(cancelled), int(n))

    def mark_received(self, marks: list[tuple[str, float]]) -> None:
        args = [self.events]
        for run_id, now in marks:
            args += [repr(now), json.dumps(run_id)]
        # one script call for the batch (in a pipeline redis-py asks SCRIPT EXISTS first)
        self._run(self._received, [f"{self.p}{keys.RUN}{run_id}" for run_id, _ in marks], args)

    @staticmethod
    def _decode(raw: Any) -> RunRecord | None:
        return RunRecord.from_json(_decoded(list(raw), list(raw.values()))) if raw \
            else None

    def run(self, run_id: str) -> RunRecord | None:
        return self._decode(self.r.hgetall(f"{self.p}{keys.RUN}{run_id}"))

    def runs(self, job: str | None = None, limit: int = 20) -> list[RunRecord]:
        key = f"{self.p}{keys.RUNS}:{job}" if job else f"{self.p}{keys.RUNS}"
        pipe = self.r.pipeline(transaction=False)
        for rid in self.r.zrevrange(key, 0, limit - 1):
            pipe.hgetall(f"{self.p}{keys.RUN}{rid!s}")
        return [r for r in map(self._decode, pipe.execute()) if r]

    def request_cancel(self, run_id: str, by: str) -> None:
        self.r.set(f"{self.p}{keys.CANCEL}{run_id}", by, ex=7 * 86400)

    def cancel_requested(self, run_id: str) -> str | None:
        by = self.r.get(f"{self.p}{keys.CANCEL}{run_id}")
        return None if by is None else str(by) or "runner cancel"

    def lock(self, name: str, owner: str, ttl: float) -> bool:
        return bool(self._renew(keys=[f"{self.p}{keys.LOCK}{name}"], args=[owner, int(ttl * 1000)]))

    def get(self, key: str) -> dict[str, Any] | None:
        raw = self.r.get(f"{self.p}{keys.KV}{key}")
        return json.loads(raw) if raw else None

    def entries(self, prefix: str) -> dict[str, dict[str, Any]]:
        found = [str(k) for k in self.r.scan_iter(match=f"{self.p}{keys.KV}{prefix}*",
                                                  count=1000)]
        raws = self.r.mget(found) if found else []
        return {k[len(self.p) + len(keys.KV):]: json.loads(v)
                for k, v in zip(found, raws, strict=True)
                if v}

    def put(self, key: str, value: dict[str, Any]) -> None:
        self.put_many({key: value})

    def delete(self, key: str) -> None:
        self.r.delete(f"{self.p}{keys.KV}{key}")

    def put_many(self, values: dict[str, dict[str, Any]]) -> None:
        pipe = self.r.pipeline(transaction=False)
        for key, value in values.items():
            pipe.set(f"{self.p}{keys.KV}{key}", json.dumps(value))
            pipe.publish(self.events, json.dumps({"kind": "entry", "key": key}))
        pipe.execute()

    def put_new(self, key: str, value: dict[str, Any]) -> dict[str, Any]:
        pipe = self.r.pipeline(transaction=True)
        pipe.set(f"{self.p}{keys.KV}{key}", json.dumps(value), nx=True)
        pipe.get(f"{self.p}{keys.KV}{key}")
        return dict(json.loads(pipe.execute()[1]))

    def to_publish(self, limit: int, feed: str = keys.PUBLISH) -> list[str]:
        return [str(i) for i in self.r.zrange(f"{self.p}{feed}", 0, limit - 1)]

    def to_notify(self, item: str, at: float) -> None:
        pipe = self.r.pipeline(transaction=False)
        pipe.zadd(f"{self.p}{keys.NOTIFY}", {item: at})
        pipe.zremrangebyrank(f"{self.p}{keys.NOTIFY}", 0, -keys.NOTIFY_KEEP - 1)
        pipe.execute()

    def published(self, run_ids: list[str], feed: str = keys.PUBLISH) -> None:
        if run_ids:
            self.r.zrem(f"{self.p}{feed}", *run_ids)

    def forget(self, before: float, limit: int = 1000, skip: int = 0) -> tuple[int, int]:
        deleted, looked = self._forget(keys=[f"{self.p}{keys.RUNS}", f"{self.p}{keys.PUBLISH}"],
                                       args=[repr(before), limit, self.p, skip])
        return int(deleted), int(looked)

    def tally(self, key: str, add: dict[str, float], latest: dict[str, float]) -> None:
        pipe = self.r.pipeline(transaction=True)  # MULTI: no reader sees half a batch
        for field_, n in add.items():
            pipe.hincrbyfloat(f"{self.p}{keys.TALLY}{key}", field_, n)
        if latest:
            pipe.hset(f"{self.p}{keys.TALLY}{key}", mapping=latest)  # type: ignore[arg-type]
        pipe.execute()

    def tallies(self, key: str) -> dict[str, float]:
        return {str(k): float(v) for k, v in self.r.hgetall(f"{self.p}{keys.TALLY}{key}").items()}

    def _slots(self, names: list[str], change: Any) -> Any:
        """change(states) -> (new states, result), in a WATCH/MULTI transaction (tried
        again when another writer changed one of the limits meanwhile)."""
        index, ks = f"{self.p}{keys.SLOTS}", [f"{self.p}{keys.SLOT}{n}" for n in names]
        out: list[Any] = []

        def step(pipe: Any) -> None:
            raws = pipe.mget(ks)
            new, result = change({n: json.loads(r) if r else None
                                  for n, r in zip(names, raws, strict=True)})
            out[:] = [result]
            pipe.multi()
            for n, key in zip(names, ks, strict=True):
                state = new[n]
                if state is None:
                    pipe.delete(key)
                    pipe.srem(index, n)
                else:
                    pipe.set(key, json.dumps(state))
                    pipe.sadd(index, n)

        self.r.transaction(step, *ks)
        return out[0]

    def take_slots(self, wanted: list[tuple[str, int]], holder: str, owner: str,
                   ttl: float) -> list[str]:
        blocked: list[str] = self._slots([n for n, _ in wanted], lambda states: slots.take(
            states, wanted, holder, owner, time.time(), ttl))
        return blocked

    def free_slots(self, names: list[str], holder: str) -> None:
        self._slots(names, lambda states: (slots.free(states, holder, time.time()), None))

    def slots(self) -> dict[str, dict[str, Any]]:
        names = sorted(str(n) for n in self.r.smembers(f"{self.p}{keys.SLOTS}"))
        raws = self.r.mget([f"{self.p}{keys.SLOT}{n}" for n in names]) if names else []
        now, out = time.time(), {}
        for n, raw in zip(names, raws, strict=True):
            state = slots.fresh(json.loads(raw) if raw else None, now)
            if state["holders"] or state["queue"]:
                out[n] = state
        return out

    def holder(self, name: str) -> str | None:
        owner = self.r.get(f"{self.p}{keys.LOCK}{name}")
        return str(owner) if owner else None

    def runs_stamp(self) -> str | None:
        return None  # its range read of the run index is as cheap as a stamp's

    def runs_page(self, job: str | None = None, before: Cursor | None = None, limit: int = 50,
                  state: str | None = None, since: float | None = None,
                  scan: int = 5000, until: float | None = None, where: RunFilter | None = None
                  ) -> tuple[list[RunRecord], Cursor | None]:
        key = f"{self.p}{keys.RUNS}:{job}" if job else f"{self.p}{keys.RUNS}"
        where = RunFilter(state) if where is None and state else where
        if where and state:
            where = dataclasses.replace(where, state=state)
        since, until = where.window(since, until) if where else (since, until)
        tops = [t for t in (until, before[0] if before else None) if t is not None]
        top = repr(min(tops)) if tops else "+inf"
        low = "-inf" if since is None else repr(since)
        out: list[RunRecord] = []
        offset = looked = 0
        last: Cursor | None = None
        while looked < scan:
            want = min(scan - looked, limit + 1 if where is None else max(4 * limit, 200))
            batch: list[tuple[str, float]] = list(self.r.zrevrangebyscore(  # type: ignore[arg-type]
                key, top, low, start=offset, num=want, withscores=True))
            exhausted = len(batch) < want
            offset += len(batch)
            if before is not None:  # a tie on the cursor's time: only ids below it
                batch = [(i, t) for i, t in batch if t < before[0] or str(i) < before[1]]
            pipe = self.r.pipeline(transaction=False)
            for rid, _t in batch:
                pipe.hmget(f"{self.p}{keys.RUN}{rid}", SUMMARY)
            for (rid, created), values in zip(batch, pipe.execute(), strict=True):
                if len(out) == limit:
                    return out, last
                looked += 1
                last = (float(created), str(rid))
                if values[2] is None:  # deleted meanwhile
                    continue
                fields = _decoded(SUMMARY, values)
                if where is None or where.keeps(fields):
                    out.append(RunRecord.from_json(fields))
            if exhausted:
                return out, None
        return out, last

def _decoded(names: Sequence[str], values: Sequence[str | None]) -> dict[str, Any]:
    """A record's fields from their JSON texts (None: absent), in one parse: a page of runs
    decodes a thousand fields."""
    present = [(k, v) for k, v in zip(names, values, strict=True) if v is not None]
    return dict(zip([k for k, _ in present], json.loads(f"[{','.join(v for _, v in present)}]"),
                    strict=True))
