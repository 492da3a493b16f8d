"""`runner run --enqueue --wait --format json` prints what a direct run prints, plus the record."""

from __future__ import annotations

from runner.cli.base import _run_json
from runner.runs import RunRecord

DIRECT = ["run_id", "job", "revision", "status", "started", "finished", "duration", "targets"]


def test_a_run_that_never_started_has_the_direct_run_keys() -> None:
    record = {"run_id": "r", "job": "j", "revision": "abc", "state": "REVOKED", "created": 1.0,
              "finished": 2.0, "trigger": "api", "targets": ["web-1"],
              "error": "cancelled by otto via the API before it started"}
    out = _run_json(RunRecord.from_json(record))
    assert list(out)[:len(DIRECT)] == DIRECT
    assert (out["status"], out["targets"], out["duration"]) == ("cancelled", {}, None)
    assert (out["state"], out["trigger"], out["created"]) == ("REVOKED", "api", 1.0)
    assert out["error"] == record["error"]


def test_a_finished_run_is_its_result_plus_the_record() -> None:
    result = {"run_id": "r", "job": "j", "revision": "abc", "status": "failed", "started": 1.5,
              "finished": 2.5, "duration": 1.0, "targets": {"web-1": {"status": "failed"}}}
    out = _run_json(RunRecord.from_json({"run_id": "r", "job": "j", "state": "FAILURE",
                                         "started": 1.2, "finished": 2.6, "worker": "w-1@h",
                                         "targets": ["web-1"], "result": result}))
    assert {k: out[k] for k in DIRECT} == result
    assert (out["state"], out["worker"]) == ("FAILURE", "w-1@h") and "result" not in out
