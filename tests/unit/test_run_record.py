"""RunRecord, the typed run record: what each writer writes comes back from to_json
unchanged (same keys, same order, nulls kept, nothing added), and fields of other versions
are kept."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from runner.celery.handoff import final_record
from runner.celery.tasks import pending
from runner.config import model
from runner.config.load import build
from runner.runs import RunRecord, RunState

CONFIG = build("0123abcd", {
    "targets": {"web-1": {"transport": "local"}, "web-2": {"transport": "local"}},
    "jobs": {"j": {"queue": "q", "targets": ["web-1", "web-2"],
                   "steps": [{"command": "true"}]}}})
SCHEDULE = model.schedule("nightly", {"job": "j", "cron": "0 3 * * *"})
AT = datetime(2026, 12, 1, 3, tzinfo=UTC)


def same(record: dict[str, Any]) -> None:
    """The record comes back as written: equal, and byte-identical as JSON."""
    back = RunRecord.from_json(json.loads(json.dumps(record))).to_json()
    assert back == record
    assert json.dumps(back) == json.dumps(record)


def test_the_enqueuers_pending_record_comes_back_as_written() -> None:
    record = pending(CONFIG, "j", "api", extra={"actions": [{"action": "run", "by": "otto"}]})
    assert record["limit"] is None and record["retry_of"] is None  # written as nulls
    same(record)
    typed = RunRecord.from_json(record)
    assert (typed.state, typed.targets, typed.queue) == (RunState.PENDING, ("web-1", "web-2"),
                                                          "q")
    assert typed.actions == ({"action": "run", "by": "otto"},)
    same(pending(CONFIG, "j", "retry-of r0", "web-1", retry_of="r0", schedule="nightly",
                 scheduled_for=AT.isoformat(), extra={"attempt": 2}))


def test_beats_missed_and_skipped_records_come_back_as_written() -> None:
    missed = final_record(SCHEDULE, CONFIG, "MISSED", "beat was not running", AT) | {
        "missed_from": AT.isoformat(), "missed_count": 3, "missed_to": AT.isoformat()}
    same(missed)
    typed = RunRecord.from_json(missed)
    assert (typed.state, typed.missed_count, typed.queue) == (RunState.MISSED, 3, None)
    assert "queue" not in typed.to_json()  # unset stays absent
    same(final_record(SCHEDULE, CONFIG, "SKIPPED", "previous run still STARTED", AT))


def test_a_worker_or_direct_runs_whole_record_comes_back_as_written() -> None:
    record = {"run_id": "018f-1", "job": "j", "revision": "0123abcd", "trigger": "cli",
              "state": "SUCCESS", "queue": "q", "targets": ["web-1"], "limit": None,
              "created": 1.5, "started": 1.5, "deliveries": 1, "worker": "cli-12@host",
              "received": 2, "finished": 3.25, "error": None, "note": "delivered again",
              "resent": 2.5, "result": {"status": "success", "targets": {"web-1": {
                  "status": "success", "downloads": [{"src": "/a", "sha256": "ab"}]}}}}
    same(record)
    typed = RunRecord.from_json(record)
    assert (typed.worker, typed.deliveries, typed.received) == ("cli-12@host", 1, 2)
    assert typed.result is not None and typed.result["status"] == "success"


def test_fields_and_states_of_another_version_are_kept() -> None:
    record = {"run_id": "r", "job": "j", "state": "PAUSED", "retries": 2,
              "targets": "web-1", "created": 1.0, "approved_by": {"name": "otto"}}
    typed = RunRecord.from_json(record)
    assert typed.state is None and typed.targets is None  # not this version's kind
    assert typed.extra == {"state": "PAUSED", "retries": 2, "targets": "web-1",
                           "approved_by": {"name": "otto"}}
    same(record)


def test_updated_sets_fields_as_a_dict_update_does() -> None:
    typed = RunRecord.from_json({"run_id": "r", "job": "j", "state": "PENDING", "later": 1})
    done = typed.updated({"state": RunState.SUCCESS, "finished": 2.0, "error": None})
    assert json.dumps(done.to_json()) == json.dumps(
        {"run_id": "r", "job": "j", "state": "SUCCESS", "later": 1, "finished": 2.0,
         "error": None})
    assert typed.state == RunState.PENDING  # frozen: a new record
    with pytest.raises(AttributeError):
        typed.state = RunState.FAILURE  # type: ignore[misc]


def test_a_record_built_in_code_writes_the_fields_it_sets() -> None:
    typed = RunRecord("r", job="j", state=RunState.STARTED, targets=("a",), extra={"x": 1})
    assert json.dumps(typed.to_json()) == json.dumps(
        {"run_id": "r", "job": "j", "state": "STARTED", "targets": ["a"], "x": 1})
    assert RunRecord.from_json({}).to_json() == {}


def test_a_record_reads_by_field_and_compares_by_its_fields() -> None:
    record = {"run_id": "r", "job": "j", "state": "FAILURE", "targets": ["a"], "odd": 1}
    typed = RunRecord.from_json(record)
    assert typed.to_json() == record and typed == RunRecord.from_json(record)
    assert (typed.state, typed.limit, typed.extra["odd"]) == ("FAILURE", None, 1)
    assert type(typed.to_json()["state"]) is str and typed.targets == ("a",)
    assert typed != RunRecord.from_json({**record, "odd": 2})  # other versions' fields count
    assert typed != record  # a record, not its JSON object
