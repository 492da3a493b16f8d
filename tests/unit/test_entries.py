"""The store's entries: each reads the JSON runner writes there today (literal dicts, as the
code before store/entries.py wrote them) and writes it back unchanged, keeps a later
version's fields, and reads an older version's with fields missing."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from runner.store.entries import (
    Applied,
    BeatStatus,
    Mark,
    PublisherStatus,
    ReconcileStatus,
    Suspended,
    WorkerHeartbeat,
)

# the shapes each writer wrote before the entries were typed
TODAY: list[tuple[Any, dict[str, Any]]] = [
    (ReconcileStatus, {"last_reconcile": 1.5, "source": "/src", "branch": "main",
                       "fetch_error": "git fetch failed: no such repository"}),
    (ReconcileStatus, {"last_reconcile": 1.5, "source": "/src", "branch": "main",
                       "attempted_revision": "b" * 40, "errors": [],
                       "applied_revision": "a" * 40, "applied_digest": "d" * 64,
                       "applied_at": 1.0, "refused": "commit bbbb is not signed"}),
    (ReconcileStatus, {"last_reconcile": 1.5, "source": "/src", "branch": "main",
                       "attempted_revision": "b" * 40,
                       "errors": [{"file": "jobs.yaml", "line": 3, "message": "bad"}]}),
    (Applied, {"revision": "a" * 40, "digest": "d" * 64}),
    (Suspended, {"schedules": {}}),
    (Suspended, {"all": {"by": "ann", "at": 2.0},
                 "schedules": {"nightly": {"by": "bob", "at": 1.0}}}),
    (WorkerHeartbeat, {"name": "w1", "heartbeat": 3.0}),
    (WorkerHeartbeat, {"name": "w1", "heartbeat": 3.0, "revision": "a" * 40,
                       "queues": ["default", "fast"], "concurrency": None, "matched_at": 2.5}),
    (WorkerHeartbeat, {"name": "w1", "heartbeat": 3.0, "revision": "a" * 40,
                       "queues": [], "concurrency": 4, "matched_at": 2.5, "stopped": 3.0,
                       "reaped": 9.0}),
    (PublisherStatus, {"branch": "reports", "head": "c" * 40, "remote": None, "unpushed": 0,
                       "last_error": None, "git_dir": "/repo/.git", "at": 4.0}),
    (BeatStatus, {"owner": "ab12", "revision": "a" * 40, "schedules": ["a", "b"],
                  "loaded_at": 5.0}),
]


@pytest.mark.parametrize(("kind", "data"), TODAY,
                         ids=[f"{k.__name__}-{i}" for i, (k, _) in enumerate(TODAY)])
def test_todays_json_reads_and_writes_back_the_same(kind: Any, data: dict[str, Any]) -> None:
    entry = kind.from_json(data)
    assert json.dumps(entry.to_json(), sort_keys=True) == json.dumps(data, sort_keys=True)
    assert kind.from_json(entry.to_json()) == entry
    later = kind.from_json({**data, "added_later": {"x": 1}})  # a newer writer's field
    assert later.to_json() == {**data, "added_later": {"x": 1}}


def test_fields_read_typed() -> None:
    rec = ReconcileStatus.from_json(TODAY[1][1])
    assert (rec.applied_revision, rec.errors, rec.fetch_error) == ("a" * 40, (), None)
    worker = WorkerHeartbeat.from_json(TODAY[7][1])
    assert (worker.queues, worker.concurrency, worker.stopped) == (("default", "fast"), None, None)
    assert BeatStatus.from_json(TODAY[10][1]).schedules == ("a", "b")


def test_an_older_versions_entry_reads_with_fields_missing() -> None:
    assert Applied.from_json({"revision": "r"}) == Applied("r", "")
    assert Suspended.from_json({}) == Suspended()  # no "schedules" yet
    assert Suspended.from_json({"all": {"by": "ann"}}).all == Mark("ann")
    assert PublisherStatus.from_json({"head": "h"}).git_dir is None
    assert WorkerHeartbeat.from_json({}).heartbeat is None


def test_entries_built_in_code_write_todays_shape() -> None:
    """What the writers build (worker, suspend, apply, publisher, beat) is what they wrote."""
    assert WorkerHeartbeat("w1", heartbeat=3.0).to_json() == TODAY[6][1]
    matched = WorkerHeartbeat("w1", "a" * 40, ("default", "fast"), None, 2.5, 3.0)
    assert matched.to_json() == TODAY[7][1]  # concurrency None is written once matched
    paused = Suspended(Mark("ann", 2.0), {"nightly": Mark("bob", 1.0)})
    assert paused.to_json() == TODAY[5][1]
    assert Suspended().to_json() == {"schedules": {}}  # what resume of every schedule leaves
    assert Applied("a" * 40, "d" * 64).to_json() == TODAY[3][1]
    assert PublisherStatus("reports", "c" * 40, None, 0, None, "/repo/.git",
                           4.0).to_json() == TODAY[9][1]
    assert BeatStatus("ab12", "a" * 40, ("a", "b"), 5.0).to_json() == TODAY[10][1]


def test_suspended_holds() -> None:
    one = Suspended.from_json({"schedules": {"nightly": {"by": "bob", "at": 1.0}}})
    assert (one.holds("nightly"), one.holds("hourly")) == (True, False)
    assert Suspended.from_json(TODAY[5][1]).holds("hourly")  # every schedule


def test_no_module_but_keys_spells_a_store_key_or_lock_name() -> None:
    spelled = re.compile(r"store\.(get|put|put_new|lock|holder|entries|tally|tallies)\(\s*f?[\"']")
    root = Path(__file__).resolve().parents[2] / "runner"
    found = [f"{p.relative_to(root)}:{n}" for p in sorted(root.rglob("*.py"))
             if p.name != "keys.py"
             for n, line in enumerate(p.read_text().splitlines(), 1) if spelled.search(line)]
    assert found == []
