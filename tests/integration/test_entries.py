"""The typed entry functions against both stores: what an older process put is read, what
they write an older process reads as it always did (the same JSON under the same key)."""

from __future__ import annotations

from runner.store import Store, keys
from runner.store import entries as e


def test_each_entry_is_written_and_read_under_its_key(store: Store) -> None:
    assert (e.read_reconcile(store), e.read_applied(store), e.read_suspended(store),
            e.read_publisher(store), e.read_beat(store), e.read_worker(store, "w@h")) == (
        None, None, None, None, None, None)
    status = e.ReconcileStatus(1.0, "/src", "main", attempted_revision="r", errors=())
    e.write_reconcile(store, status)
    assert store.get(keys.RECONCILE) == {"last_reconcile": 1.0, "source": "/src",
                                         "branch": "main", "attempted_revision": "r",
                                         "errors": []}
    assert e.read_reconcile(store) == status
    e.write_applied(store, e.Applied("r", "d"))
    assert store.get(keys.APPLIED) == {"revision": "r", "digest": "d"}
    e.write_suspended(store, e.Suspended(e.Mark("ann", 2.0)))
    assert store.get(keys.SUSPENDED) == {"all": {"by": "ann", "at": 2.0}, "schedules": {}}
    e.write_publisher(store, e.PublisherStatus("reports", "h", None, 0, None, "/g", 3.0))
    assert (store.get(keys.REPORTS) or {})["remote"] is None
    e.write_beat(store, e.BeatStatus("o", "r", ("a",), 4.0))
    assert store.get(keys.BEAT) == {"owner": "o", "revision": "r", "schedules": ["a"],
                                    "loaded_at": 4.0}


def test_workers_are_read_by_celery_hostname(store: Store) -> None:
    store.put(keys.worker("w1@host"), {"name": "w1", "heartbeat": 1.0})  # as a worker wrote
    e.write_worker(store, "w2@host", e.WorkerHeartbeat("w2", heartbeat=2.0, reaped=3.0))
    assert e.read_workers(store) == {"w1@host": e.WorkerHeartbeat("w1", heartbeat=1.0),
                                     "w2@host": e.WorkerHeartbeat("w2", heartbeat=2.0,
                                                                  reaped=3.0)}
    assert store.get(keys.worker("w2@host")) == {"name": "w2", "heartbeat": 2.0, "reaped": 3.0}
