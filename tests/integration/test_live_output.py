"""A running run's live output (celery/output.py) on both stores: one entry per target, written
only when that target's output changed, each stream's tail capped at LIVE_CAP; and every way
a run ends or goes (its worker's clear, the orphan sweep, forget) deletes its entries."""

from __future__ import annotations

import socket
import subprocess

from runner.celery import output
from runner.celery.output import LIVE_CAP, LiveOutput
from runner.celery.tasks import sweep_orphans
from runner.config.model import Target
from runner.executor.attempt import Attempt
from runner.executor.base import Masker
from runner.runs import RunRecord, new_run_id
from runner.store import Store, keys

CAP = 2 * 1024 * 1024  # what the final record keeps (RUNNER_OUTPUT_CAP): more than LIVE_CAP


def attempt(name: str) -> Attempt:
    return Attempt(name, CAP, Masker(["s3cret"]), Target(name, transport="local"))


def test_only_changed_targets_are_written_each_with_a_capped_tail(store: Store) -> None:
    clock = [0.0]
    live = LiveOutput(store, "r1", clock=lambda: clock[0])
    a, b = attempt("a"), attempt("b")
    live.attach("a", a)
    live.attach("b", b)
    a.out.write(b"a says s3cret\n")
    live.tick()
    assert output.read(store, "r1") == {
        "a": {"stdout": "a says ********\n", "stderr": "", "step": "connect"},
        "b": {"stdout": "", "stderr": "", "step": "connect"}}
    store.put(keys.output("r1", "a"), {"stdout": "as written", "stderr": "", "step": "x"})
    b.out.write(b"x" * (3 * LIVE_CAP) + b"end s3cret\n")  # a's output did not change
    live.tick()
    assert output.read(store, "r1")["b"]["stdout"] == ""  # not a second after the last
    clock[0] = 1.0
    live.tick()
    shown = output.read(store, "r1")
    assert shown["a"]["stdout"] == "as written"  # not written again
    cut = 3 * LIVE_CAP + len("end ********\n") - LIVE_CAP
    assert shown["b"]["stdout"] == f"[... {cut} bytes cut ...]\n" + "x" * (
        LIVE_CAP - len("end ********\n")) + "end ********\n"
    assert b.out.text().endswith("end ********\n") and len(b.out.buf) > 3 * LIVE_CAP  # whole
    live.clear()
    assert [store.get(k) for k in (keys.output("r1"), keys.output("r1", "a"),
                                   keys.output("r1", "b"))] == [None, None, None]


def live_entries(store: Store, run_id: str) -> None:
    store.put_many({keys.output(run_id, "t"): {"stdout": "so far", "stderr": "", "step": "s"},
                    keys.output(run_id): {"targets": ["t"]}})


def test_the_orphan_sweep_deletes_a_dead_workers_live_output(store: Store) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    run_id = new_run_id()
    store.save_run(RunRecord.from_json(
        {"run_id": run_id, "job": "j", "state": "STARTED", "created": 1.0,
         "worker": f"w-{dead.pid}@{socket.gethostname()}"}))
    live_entries(store, run_id)
    assert sweep_orphans(store, socket.gethostname()) == [run_id]
    assert output.read(store, run_id) == {} and store.get(keys.output(run_id, "t")) is None


def test_forget_deletes_a_live_output_left_behind(store: Store) -> None:
    run_id = new_run_id(50.0)
    store.save_run(RunRecord.from_json(
        {"run_id": run_id, "job": "j", "state": "FAILURE", "created": 50.0, "finished": 51.0}))
    store.published([run_id])
    live_entries(store, run_id)
    assert store.forget(100.0) == (1, 1)
    assert store.get(keys.output(run_id)) is None and store.get(keys.output(run_id, "t")) is None
