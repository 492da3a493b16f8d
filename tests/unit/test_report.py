"""report.py: a run record in, its run directory, files and commit message out."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from runner.report import created_of, expired, render, run_dir, safe
from runner.runs import RunRecord

CREATED = datetime(2026, 11, 24, 23, 59, 30, tzinfo=UTC).timestamp()


def record(**extra: Any) -> dict[str, Any]:
    targets = {
        "web-1": {"status": "success", "rc": 0, "stdout": "up 3 days\n", "stderr": "",
                  "duration": 0.25, "error": None,
                  "downloads": [{"src": "/var/log/app.log", "bytes": 4, "truncated": False,
                                 "sha256": "ab" * 32}]},
        "web-2": {"status": "failed", "rc": 3, "stdout": "", "stderr": "no disk\n",
                  "duration": 1.5, "error": "web-2: step 'disk' exited with status 3"}}
    return {"run_id": "019ab8f0e2c8-0a1b2c3d", "job": "health-check", "state": "FAILURE",
            "revision": "c0ffee" * 6 + "c0ff", "trigger": "schedule health-every-5m",
            "created": CREATED, "started": CREATED + 1, "finished": CREATED + 40,
            "result": {"status": "failed", "targets": targets}, **extra}


def test_run_dir_is_sharded_by_the_utc_creation_day() -> None:
    r = render(record(), {"ab" * 32: b"log\n"})
    assert r.path == "runs/2026/11/24/health-check/019ab8f0e2c8-0a1b2c3d"
    assert set(r.files) == {"result.json", "web-1/stdout", "web-1/stderr", "web-2/stdout",
                            "web-2/stderr", "web-1/downloads/var_log_app.log"}
    assert r.files["web-1/downloads/var_log_app.log"] == b"log\n"
    assert r.files["web-2/stderr"] == b"no disk\n"
    assert json.loads(r.files["result.json"])["result"]["targets"]["web-2"]["rc"] == 3
    latest = json.loads(r.latest)
    assert (latest["run_id"], latest["state"], latest["path"]) == (
        "019ab8f0e2c8-0a1b2c3d", "FAILURE", r.path)
    assert latest["targets"] == {"web-1": "success", "web-2": "failed"}


def test_message_has_a_subject_a_summary_and_trailers() -> None:
    lines = render(record()).message.splitlines()
    assert lines[0] == "health-check FAILURE on 2 targets (run 019ab8f0e2c8-0a1b2c3d)"
    assert lines[2] == "web-1: success rc 0 in 0.25s"
    assert lines[3] == "web-2: failed rc 3 in 1.5s: web-2: step 'disk' exited with status 3"
    trailers = dict(line.split(": ", 1) for line in lines[lines.index("", 3) + 1:])
    assert trailers == {"Job": "health-check", "Run-Id": "019ab8f0e2c8-0a1b2c3d",
                        "Status": "FAILURE", "Config-Revision": "c0ffee" * 6 + "c0ff",
                        "Trigger": "schedule health-every-5m",
                        "Started": "2026-11-24T23:59:31Z", "Finished": "2026-11-25T00:00:10Z"}


def test_skipped_and_missed_runs_have_their_reason_and_no_targets() -> None:
    skipped = {"run_id": "019ab8f0e2c8-0a1b2c3e", "job": "nightly", "state": "SKIPPED",
               "created": CREATED, "finished": CREATED, "trigger": "schedule nightly",
               "error": "previous run X of schedule nightly is still STARTED\n(overlap: forbid)"}
    r = render(skipped)
    assert set(r.files) == {"result.json"}
    lines = r.message.splitlines()
    assert lines[0] == "nightly SKIPPED on 0 targets (run 019ab8f0e2c8-0a1b2c3e)"
    assert lines[2] == "previous run X of schedule nightly is still STARTED (overlap: forbid)"
    assert "Config-Revision: unknown" in lines and "Started: 2026-11-24T23:59:30Z" in lines


def test_many_targets_are_summarised_and_the_rest_counted() -> None:
    targets = {f"t{i:03d}": {"status": "success", "rc": 0, "duration": 0.1, "error": None}
               for i in range(25)}
    message = render(record(result={"targets": targets})).message
    assert "t019: success" in message and "t020" not in message
    assert "... and 5 more targets (result.json)" in message


def test_names_never_escape_the_run_directory() -> None:
    assert safe("../../etc") == ".._.._etc" and safe("..") == "_.." and safe("") == "_"
    r = render(record(job="../x", result={"targets": {"../t": {"status": "success"}}}))
    assert r.path == "runs/2026/11/24/.._x/019ab8f0e2c8-0a1b2c3d"
    assert not {p for f in r.files for p in f.split("/")} & {".", "..", ""}
    assert "_t/stdout" in {f.removeprefix("..") for f in r.files}


def test_creation_time_from_the_run_id_and_retention_days() -> None:
    assert created_of("019ab8f0e2c8-0a1b2c3d") == int("019ab8f0e2c8", 16) / 1000
    assert created_of("not-a-run") is None
    assert run_dir({"run_id": "019ab8f0e2c8-0a1b2c3d", "job": "j"}).startswith("runs/2025/")
    days = ["2026/11/01", "2026/11/16", "2026/11/17", "2026/11/24", "2025/12/31"]
    assert expired(days, date(2026, 11, 24), 7) == ["2025/12/31", "2026/11/01", "2026/11/16"]


def test_a_workflow_run_has_a_line_per_node_and_a_workflow_trailer() -> None:
    nodes = {"build": {"state": "success", "run_id": "019ab8f0e2c9-00000001", "attempt": 1},
             "approve": {"state": "failed", "decision": "rejected", "by": "otto",
                         "comment": "not on a\nfriday", "attempt": 1},
             "promote": {"state": "skipped", "attempt": 1}}
    run = record(job="nightly-release", result=None,
                 workflow={"workflow": "nightly-release", "nodes": nodes})
    r = render(run)
    lines = r.message.splitlines()
    assert lines[0] == "workflow nightly-release FAILURE, 3 nodes (run 019ab8f0e2c8-0a1b2c3d)"
    assert lines[2:5] == ["build: success run 019ab8f0e2c9-00000001",
                          "approve: failed rejected by otto (not on a friday)",
                          "promote: skipped"]
    trailers = dict(line.split(": ", 1) for line in lines[6:])
    assert trailers["Workflow"] == "nightly-release" and "Job" not in trailers
    assert r.path == "runs/2026/11/24/nightly-release/019ab8f0e2c8-0a1b2c3d"
    assert json.loads(r.files["result.json"])["workflow"]["nodes"] == nodes


def test_a_child_run_names_its_workflow_run_and_node() -> None:
    child = RunRecord.from_json(record(parent="019ab8f0e2c7-0a1b2c3d", node="build"))
    assert child.parent == "019ab8f0e2c7-0a1b2c3d"
    trailers = dict(line.split(": ", 1) for line in render(child.to_json()).message
                    .split("\n\n")[-1].splitlines())
    assert trailers["Job"] == "health-check"
    assert (trailers["Workflow-Run"], trailers["Workflow-Node"]) == (
        "019ab8f0e2c7-0a1b2c3d", "build")
    assert "Workflow-Run" not in render(record()).message
