"""The store's run-record operations, the same table on Redis (real server) and on files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runner.runs import RunRecord
from runner.store import Begin, Store
from runner.store.files import FileStore
from runner.store.redis import RedisStore
from tests.servers import Redis

# (state before or None for no record, cancel requested) -> (Begin, state after)
BEGIN = [
    (None, False, Begin(None, False, 1), "STARTED"),
    ("PENDING", False, Begin("PENDING", False, 1), "STARTED"),
    ("RECEIVED", False, Begin("RECEIVED", False, 1), "STARTED"),
    ("STARTED", False, Begin("STARTED", False, 0), "STARTED"),  # delivered again: runs nothing
    ("STARTED", True, Begin("STARTED", False, 0), "STARTED"),  # ... its first delivery stops it
    ("WAITING", False, Begin("WAITING", False, 0), "WAITING"),  # begun, waits for a slot
    ("WAITING", True, Begin("WAITING", False, 0), "WAITING"),
    ("SUCCESS", False, Begin("SUCCESS", False, 0), "SUCCESS"),  # duplicate: never twice
    ("FAILURE", True, Begin("FAILURE", False, 0), "FAILURE"),
    ("REVOKED", False, Begin("REVOKED", False, 0), "REVOKED"),
    ("PENDING", True, Begin("PENDING", True, 0), "PENDING"),
    (None, True, Begin(None, True, 0), None),
]


@pytest.mark.parametrize(("before", "cancel", "expected", "after"), BEGIN)
def test_begin_run(store: Store, before: str | None, cancel: bool, expected: Begin,
                   after: str | None) -> None:
    if before is not None:
        record: dict[str, Any] = {"run_id": "r1", "job": "j", "state": before, "created": 5.0}
        if before in ("STARTED", "WAITING"):
            record["deliveries"] = 1
        store.save_run(RunRecord.from_json(record))
    if cancel:
        store.request_cancel("r1", "t")
    assert store.begin_run("r1", "j", "w-1@h", 7.5) == expected
    got = store.run("r1")
    assert (got or RunRecord("r1")).state == after
    if expected.started:
        assert got is not None
        assert (got.worker, got.started, got.deliveries) == ("w-1@h", 7.5, expected.deliveries)
        assert [r.run_id for r in store.runs("j")] == ["r1"]  # indexed, even if it was new


def test_a_cancel_request_keeps_who_asked(store: Store) -> None:
    assert store.cancel_requested("r3") is None
    store.request_cancel("r3", "alice via the API")
    assert store.cancel_requested("r3") == "alice via the API"


@pytest.mark.parametrize(("before", "after"), [("PENDING", "RECEIVED"), ("STARTED", "STARTED"),
                                               ("REVOKED", "REVOKED")])
def test_mark_received_moves_only_a_pending_run(store: Store, before: str, after: str) -> None:
    store.save_run(RunRecord.from_json(
        {"run_id": "r2", "job": "j", "state": before, "created": 1.0}))
    store.mark_received([("r2", 2.0), ("no-such-run", 2.0)])
    got = store.run("r2") or RunRecord("r2")
    assert (got.state, got.received) == (after, 2.0)  # the time, whatever the state
    store.mark_received([("r2", 3.0)])
    assert (store.run("r2") or RunRecord("r2")).received == 2.0  # the first time is kept
    assert store.run("no-such-run") is None  # no record is made up


def test_update_run_keeps_the_other_fields_and_their_types(store: Store) -> None:
    store.save_run(RunRecord.from_json(
        {"run_id": "r3", "job": "j", "state": "PENDING", "created": 1.25,
         "targets": ["a", "b"], "limit": None}))
    store.update_run("r3", {"state": "SUCCESS", "result": {"targets": {"a": {"rc": 0}}}})
    got = store.run("r3")
    assert got is not None and got.to_json() == {
        "run_id": "r3", "job": "j", "state": "SUCCESS", "created": 1.25, "targets": ["a", "b"],
        "limit": None, "result": {"targets": {"a": {"rc": 0}}}}
    assert store.run("nope") is None


@pytest.mark.parametrize(("before", "ended"), [("PENDING", True), ("STARTED", True),
                                               ("SUCCESS", False), ("FAILURE", False),
                                               (None, False)])
def test_end_run_ends_only_a_run_in_the_expected_states(store: Store, before: str | None,
                                                        ended: bool) -> None:
    if before is not None:
        store.save_run(RunRecord.from_json(
            {"run_id": "r4", "job": "j", "state": before, "created": 1.0}))
    fields = {"state": "FAILURE", "finished": 2.0, "error": "worker w died"}
    assert store.end_run("r4", fields, ("PENDING", "RECEIVED", "STARTED")) is ended
    got = store.run("r4")
    assert (got or RunRecord("r4")).state == ("FAILURE" if ended else before)
    assert ("r4" in store.to_publish(10)) is ended or before in ("SUCCESS", "FAILURE")
    if ended:  # a second reaper, or the worker's own final save racing it, changes nothing
        assert not store.end_run("r4", {"state": "FAILURE", "error": "again"}, ("STARTED",))
        assert (store.run("r4") or RunRecord("r4")).error == "worker w died"


def test_entries_by_prefix(store: Store) -> None:
    store.put("worker:a@h", {"heartbeat": 1.0})
    store.put("worker:b@h", {"heartbeat": 2.0})
    store.put("beat", {"owner": "x"})
    assert store.entries("worker:") == {"worker:a@h": {"heartbeat": 1.0},
                                        "worker:b@h": {"heartbeat": 2.0}}
    assert store.entries("nothing:") == {}


@pytest.mark.parametrize("n", [0, 1, 3000])  # beat hands off a chunk of fired schedules
def test_put_many_and_save_runs_write_each_as_put_and_save_run_do(store: Store,
                                                                  n: int) -> None:
    store.put("schedule:s0", {"old": True})
    store.put_many({f"schedule:s{i}": {"last_fire": str(i)} for i in range(n)})
    expected = {f"schedule:s{i}": {"last_fire": str(i)} for i in range(n)}
    assert store.entries("schedule:") == (expected or {"schedule:s0": {"old": True}})
    store.save_runs([RunRecord.from_json(r) for r in
        [{"run_id": f"r{i:05d}", "job": "j", "state": "MISSED" if i % 2 else
          "PENDING", "created": float(i), "finished": float(i)} for i in range(n)]])
    assert [r.run_id for r in store.runs("j", limit=n + 1)] == [
        f"r{i:05d}" for i in reversed(range(n))]  # indexed, newest first
    assert store.to_publish(n + 1) == [f"r{i:05d}" for i in range(1, n, 2)]  # final: on the feed


# (state, created, published) -> forgotten; forget(before=100.0)
FORGET = [
    ("SUCCESS", 50.0, True, True),
    ("SKIPPED", 50.0, True, True),
    ("FAILURE", 50.0, False, False),   # not on the report branch yet
    ("STARTED", 50.0, False, False),   # still running
    ("WAITING", 50.0, False, False),   # ... waiting for a slot
    ("PENDING", 50.0, False, False),
    ("SUCCESS", 150.0, True, False),   # newer than the cut
]


def test_forget_deletes_only_old_ended_published_runs(store: Store) -> None:
    from runner.runs import new_run_id
    from runner.store import keys

    ids = []
    result = {"targets": {"t": {"downloads": [{"src": "/a", "sha256": "aa"},
                                              {"src": "/b"}]}}}
    for state, created, published, _ in FORGET:
        run_id = new_run_id(created)
        ids.append(run_id)
        store.save_run(RunRecord.from_json(
            {"run_id": run_id, "job": "j", "state": state, "created": created,
             "finished": created + 1,
             "result": None if state == "SKIPPED" else result}))  # beat's: none
        if state != "SKIPPED":
            store.put(keys.download(run_id, "aa"), {"data": "YQ=="})
        store.request_cancel(run_id, "t")
        if published:
            store.published([run_id])
    assert store.forget(100.0) == (sum(row[3] for row in FORGET), 6)  # 6 before 100
    for run_id, (state, _, _, forgotten) in zip(ids, FORGET, strict=True):
        assert (store.run(run_id) is None) == forgotten, state
        assert (store.cancel_requested(run_id) is None) == forgotten, state
        if state != "SKIPPED":
            assert (store.get(keys.download(run_id, "aa")) is None) == forgotten, state
    kept = {r.run_id for r in store.runs("j", limit=100)}
    assert kept == {i for i, row in zip(ids, FORGET, strict=True) if not row[3]}
    assert {r.run_id for r in store.runs(limit=100)} == kept
    assert store.forget(100.0) == (0, 4)


def test_forget_all_pages_past_old_runs_that_must_stay(store: Store) -> None:
    from runner.runs import new_run_id
    from runner.store import forget_all

    stuck = [new_run_id(10.0 + i) for i in range(5)]  # the oldest, still STARTED for good
    old = [new_run_id(20.0 + i) for i in range(7)]
    for run_id in stuck + old:
        state = "STARTED" if run_id in stuck else "SUCCESS"
        store.save_run(RunRecord.from_json({"run_id": run_id, "job": "j", "state": state,
                        "created": 10.0 if run_id in stuck else 20.0, "finished": 30.0}))
    store.published(old)  # on the report branch
    # batches of 2: the stuck five fill the first batches, the expired seven come after
    assert forget_all(store, 100.0, batch=2) == 7
    assert {r.run_id for r in store.runs("j", limit=100)} == set(stuck)
    assert forget_all(store, 100.0, batch=2, stop=lambda: True) == 0


def test_scripts_are_loaded_again_after_redis_lost_them(redis_server: Redis,
                                                        tmp_path: Path) -> None:
    store = RedisStore(redis_server.url, prefix=f"t{tmp_path.name}:")
    store.save_run(RunRecord.from_json(
        {"run_id": "r9", "job": "j", "state": "PENDING", "created": 1.0}))
    store.r.script_flush()  # as after a restart of Redis
    assert store.begin_run("r9", "j", "w-1@h", 2.0) == Begin("PENDING", False, 1)
    store.r.script_flush()
    store.update_run("r9", {"state": "SUCCESS"})
    store.r.script_flush()
    store.mark_received([("r9", 3.0)])
    assert (store.run("r9") or RunRecord("r9")).state == "SUCCESS"


def test_lateness_tally_is_shared_and_cumulative(store: Store, tmp_path: Path,
                                                 request: pytest.FixtureRequest) -> None:
    from runner.ops.lateness import observe_lateness, summary
    from runner.store.keys import LATENESS as KEY

    assert store.tallies(KEY) == {}
    observe_lateness(store, [], 1.0)  # an empty batch writes nothing
    assert store.tallies(KEY) == {}
    observe_lateness(store, [0.05, 2.0], 10.0)
    # another process's store (another API, a standby beat): the same counts, added to
    other: Store = (RedisStore(request.getfixturevalue("redis_server").url, prefix=store.p)
                    if isinstance(store, RedisStore) else FileStore(tmp_path / "state"))
    observe_lateness(other, [400.0], 20.0)
    got = summary(store.tallies(KEY))
    assert (got["count"], got["sum"], got["last"], got["last_at"]) == (3, 402.05, 400.0, 20.0)
    assert (got["buckets"]["0.1"], got["buckets"]["2.5"], got["buckets"]["300.0"],
            got["buckets"]["+Inf"]) == (1, 2, 2, 3)
