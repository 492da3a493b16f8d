"""Downloads read regular files only: a FIFO hung `runner run` for ever (past its timeout and
SIGTERM), and /dev/zero with a large max_bytes held twice max_bytes in memory. A download is
streamed into a temporary file: memory stays bounded whatever its size."""

from __future__ import annotations

import hashlib
import json
import os
import time
import tracemalloc
from pathlib import Path

from runner.config import model
from runner.executor.base import Tail
from tests.helpers.repos import add_job, copy_demo, runner_on
from tests.helpers.ssh import make_job, one, run
from tests.servers import Sshd


def test_a_download_of_a_fifo_or_a_device_fails_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    repo = copy_demo(tmp_path / "config")
    add_job(repo, f"""jobs:
  fetch:
    queue: system
    targets: [localhost]
    timeout: 5s
    steps:
      - {{download: {{src: {fifo}}}, when: always}}
      - {{download: {{src: /dev/zero, max_bytes: 104857600}}, when: always}}
      - {{download: {{src: {tmp_path}}}, when: always}}
""")
    start = time.monotonic()
    done = runner_on(repo, "run", "fetch", "--format", "json")
    assert time.monotonic() - start < 30  # it hung for ever
    assert done.returncode == 1, done.stderr
    t = json.loads(done.stdout)["targets"]["localhost"]
    assert t["status"] == "failed"
    assert t["error"] == (f"localhost: download of {fifo} failed: not a regular file "
                          "(downloads read regular files only)")
    assert t["downloads"] == []


def test_max_bytes_has_a_maximum(tmp_path: Path) -> None:
    repo = copy_demo(tmp_path / "config")
    add_job(repo, """jobs:
  fetch:
    queue: system
    targets: [localhost]
    steps:
      - {download: {src: /dev/zero, max_bytes: 104857601}}
""")
    done = runner_on(repo, "validate")
    assert done.returncode == 1
    assert "must be from 1 to 104857600; found an integer 104857601" in done.stdout


def test_ssh_download_of_a_fifo_fails_clearly(sshd: Sshd, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    t = one(sshd, [{"download": {"src": str(fifo)}}])
    assert t.status == "failed"
    assert t.error == (f"t: download of {fifo} failed: not a regular file (downloads read "
                       f"regular files only): {fifo}")


def test_a_directory_is_refused_as_not_regular_and_leaks_no_descriptor(tmp_path: Path) -> None:
    import pytest

    from runner.executor.local import _read_head

    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        with pytest.raises(OSError, match="not a regular file"):
            _read_head(str(tmp_path), 10, Tail(10))
    assert len(os.listdir("/proc/self/fd")) == before


BIG = 100 * 1024 * 1024  # the schema's maximum max_bytes


def big_file(path: Path) -> str:
    """A 100 MiB file of varied bytes (not one repeated block); its sha256."""
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        for i in range(BIG // 65536):
            block = hashlib.sha512(str(i).encode()).digest() * 1024
            f.write(block)
            digest.update(block)
    return digest.hexdigest()


def peak_of_download(target: dict[str, object], src: Path) -> tuple[int, str, int, bool]:
    """The peak of Python memory while a 100 MiB download runs; its sha256, size, cut."""
    job = make_job([{"download": {"src": str(src), "max_bytes": BIG}}])
    tracemalloc.start()
    try:
        t = run(job, {"t": model.target("t", target)}).targets["t"]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert t.status == "success", t.error
    d = t.downloads[0]
    digest = hashlib.sha256()
    for chunk in d.chunks():
        digest.update(chunk)
    return peak, digest.hexdigest(), d.size, d.truncated


def test_a_local_download_streams_with_bounded_memory(tmp_path: Path) -> None:
    sha = big_file(tmp_path / "big")
    peak, got, size, cut = peak_of_download({"transport": "local"}, tmp_path / "big")
    assert (got, size, cut) == (sha, BIG, False)
    assert peak < BIG // 10, f"{peak / 2**20:.1f} MiB"  # was 200 MiB and more


def test_an_ssh_download_streams_with_bounded_memory(sshd: Sshd, tmp_path: Path) -> None:
    sha = big_file(tmp_path / "big")
    peak, got, size, cut = peak_of_download(sshd.target(), tmp_path / "big")
    assert (got, size, cut) == (sha, BIG, False)
    assert peak < BIG // 10, f"{peak / 2**20:.1f} MiB"
