"""Workflow runs on the report branch (issue 20), for real: records saved into a store (files
and Redis), the publisher run once on a git repository, the branch read back with git log."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from runner.publish import Publisher
from runner.runs import RunRecord, new_run_id
from runner.store import Store
from tests.helpers.repos import git


def saved(store: Store, job: str, state: str, when: float, **extra: Any) -> str:
    """A finished run record, as the runtime would have saved it."""
    run_id = new_run_id(when)
    store.save_run(RunRecord.from_json(
        {"run_id": run_id, "job": job, "state": state, "created": when, "started": when,
         "finished": when + 1, "trigger": "schedule nightly", "revision": "b" * 40,
         **extra}))
    return run_id


def grep(repo: Path, pattern: str) -> list[str]:
    """The subjects of the report branch's commits whose message matches `pattern`."""
    return git(repo, "log", "reports", f"--grep={pattern}", "--format=%s").splitlines()


def test_a_workflow_run_and_its_children_are_committed_and_found_by_trailer(
        demo_repo: Path, store: Store) -> None:
    now = time.time() - 60
    flow = "019ab8f0e2c8-0a1b2c3d"
    build = saved(store, "build", "SUCCESS", now, parent=flow, node="build")
    test = saved(store, "smoke-test", "FAILURE", now + 2, parent=flow, node="test")
    other = saved(store, "build", "SUCCESS", now + 3)  # a run of its own: no workflow trailers
    nodes = {"build": {"state": "success", "run_id": build, "attempt": 1},
             "test": {"state": "failed", "run_id": test, "attempt": 1},
             "promote": {"state": "skipped", "attempt": 1}}
    flow = saved(store, "nightly-release", "FAILURE", now + 4,
                 workflow={"workflow": "nightly-release", "revision": "b" * 40,
                           "cancelled": False, "nodes": nodes})
    for child in (build, test):  # the children name their workflow run
        record = store.run(child)
        assert record is not None
        store.save_run(record.updated({"parent": flow}))

    written = Publisher(demo_repo / ".git").publish(store)

    assert sorted(written.committed) == sorted([build, test, other, flow])
    assert grep(demo_repo, "^Workflow: nightly-release") == [
        f"workflow nightly-release FAILURE, 3 nodes (run {flow})"]
    children = grep(demo_repo, f"^Workflow-Run: {flow}")
    assert children == [f"smoke-test FAILURE on 0 targets (run {test})",
                        f"build SUCCESS on 0 targets (run {build})"]
    assert grep(demo_repo, "^Workflow-Node: test") == children[:1]
    head = git(demo_repo, "log", "reports", "--grep=^Workflow: ", "-1",
               "--format=%(trailers:only,unfold)").splitlines()
    assert [t.split(": ")[0] for t in head] == [
        "Workflow", "Run-Id", "Status", "Config-Revision", "Trigger", "Started", "Finished"]
    assert f"Run-Id: {flow}" in head and "Status: FAILURE" in head
    day = time.strftime("%Y/%m/%d", time.gmtime(now + 4))
    result = json.loads(git(demo_repo, "show",
                            f"reports:runs/{day}/nightly-release/{flow}/result.json"))
    assert result["workflow"]["nodes"] == nodes  # each node's state and child run id
