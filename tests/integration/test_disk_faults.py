"""Embedded mode on a full or read-only state directory, for real: a tiny tmpfs filled up, and
a read-only bind mount of the directory on itself (tests run as root, as .ci/run does, and
root writes through chmod; the mounts need root and fail the test loudly without it)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.errors import StoreUnavailable
from runner.runs import RunRecord
from runner.store.files import FileStore, clean_stale
from tests.helpers.api import Api
from tests.helpers.cluster import health, make_cluster, status
from tests.helpers.procs import poll


def mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    assert done.returncode == 0, f"mount {' '.join(args)} (needs root): {done.stderr}"


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "1m") -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """`path` read-only (for root too) until the block ends: a read-only bind mount on it."""
    mount("--bind", "-o", "ro", str(path), str(path))
    try:
        probe = path / ".probe"
        with pytest.raises(OSError, match="Read-only"):
            probe.write_text("x")
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill(folder: Path) -> Path:
    """Writes a file in `folder` until its disk is full: the file."""
    filler = folder / "filler"
    with contextlib.suppress(OSError), open(filler, "wb", buffering=0) as f:
        while True:
            f.write(b"\0" * 65536)
    return filler


def leftovers(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*")
            if p.name.startswith(".tmp-") or p.name.endswith(".partial")]


def test_a_full_disk_is_store_unavailable_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "state") as root:
        store = FileStore(root)
        store.save_run(RunRecord.from_json({"run_id": "r1", "job": "j", "state": "PENDING"}))
        filler = fill(root)
        with pytest.raises(StoreUnavailable, match=r"cannot be written \(No space left"):
            store.update_run("r1", {"output": "x" * 200_000})
        with pytest.raises(StoreUnavailable, match="cannot be written"):
            store.put("big", {"v": "x" * 200_000})
        assert leftovers(root) == []
        got = store.run("r1")
        assert got is not None and got.to_json() == {"run_id": "r1", "job": "j", "state": "PENDING"}
        filler.unlink()
        store.update_run("r1", {"state": "SUCCESS"})
        assert (store.run("r1") or RunRecord("r1")).state == "SUCCESS"


def test_stale_temporary_files_are_removed_fresh_ones_kept(tmp_path: Path) -> None:
    old, fresh, partial, record = (tmp_path / ".tmp-old", tmp_path / ".tmp-new",
                                   tmp_path / ".1_x.q.msg.partial", tmp_path / "r.json")
    for p in (old, fresh, partial, record):
        p.write_text("{}")
    an_hour_ago = time.time() - 3600
    for p in (old, partial, record):
        os.utime(p, (an_hour_ago, an_hour_ago))
    assert clean_stale([tmp_path, tmp_path / "missing"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tmp-new", "r.json"]


def test_an_enqueue_on_a_full_broker_disk_ends_its_run_failure_and_says_so(
        tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, None)
    queue = cluster.repo / ".runner" / "broker" / "queue"
    with tmpfs(queue):
        filler = fill(queue)
        done = cluster.runner("run", "side-job", "--enqueue")
        assert done.returncode == 2, done
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "No space left on device" in done.stderr
        assert "was not queued (recorded FAILURE)" in done.stderr, done.stderr
        runs = cluster.store.runs()
        assert [r.state for r in runs] == ["FAILURE"], runs
        assert "its message could not be queued" in runs[0].error
        assert leftovers(queue) == []
        filler.unlink()
        assert cluster.state(cluster.enqueue("side-job")) == "PENDING"  # room again


def test_a_run_ending_on_a_read_only_state_directory_saves_its_end_when_it_is_writable(
        tmp_path: Path) -> None:
    """The run's command ends while the store's directory is read-only: /api/health is 503,
    `runner status` says it in one sentence, the worker says it lost the store, and the
    record ends SUCCESS once the directory is writable again, with no temporary file left."""
    cluster = make_cluster(tmp_path, None)
    state = cluster.repo / ".runner" / "state"
    go = tmp_path / "go"
    (cluster.repo / "jobs.d" / "gated.yaml").write_text(
        "jobs:\n  gated: {queue: other, targets: [here], steps: [{command: "
        f"'while [ ! -e {go} ]; do sleep 0.05; done; echo finished'}}]}}\n")
    api = Api(cluster)
    try:
        worker = cluster.worker("side")
        run_id = cluster.enqueue("gated")
        poll(lambda: cluster.state(run_id) == "STARTED", 60, "the run started")
        with read_only(state):
            go.touch()  # the command ends while the state directory is read-only
            poll(lambda: b"lost the store" in cluster._log(worker), 60, "the worker saw it")
            reasons: list[str] = []
            poll(lambda: health(api.port, reasons) == 503, 30, "health 503")
            assert "cannot be written (Read-only file system)" in reasons[-1], reasons
            said = status(cluster.repo, cluster.env)
            assert said.returncode == 2 and "Traceback" not in said.stderr, said
            assert said.stderr.startswith("error: the state directory"), said.stderr
            assert len(said.stderr.strip().splitlines()) == 1
            assert cluster.state(run_id) == "STARTED"
        record = cluster.final(run_id, 60)
        assert record.state == "SUCCESS", record
        assert "finished" in str(record.result)
        poll(lambda: health(api.port) == 200, 30, "health ok again")
        assert leftovers(cluster.repo / ".runner") == []
        assert worker.poll() is None
        assert b"Traceback" not in cluster._log(worker)
    finally:
        api.stop()
        cluster.stop()
