"""The embedded broker writes each message whole before a consumer can see it."""

from __future__ import annotations

from pathlib import Path
from queue import Empty

import pytest
from kombu import Connection


def test_a_consumer_never_sees_a_message_being_written(tmp_path: Path) -> None:
    folder = tmp_path / "queue"
    folder.mkdir()
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder)}
    with Connection(transport="runner.broker:Transport", transport_options=options) as conn:
        channel = conn.default_channel
        # a message caught mid-write (what kombu's own transport let a consumer read, empty)
        (folder / ".1_x.jobs.msg.partial").write_bytes(b"")
        with pytest.raises(Empty):
            channel._get("jobs")
        channel._put("jobs", {"body": "hello"})
        assert sorted(p.name.endswith(".jobs.msg") for p in folder.iterdir()) == [False, True]
        assert channel._get("jobs") == {"body": "hello"}


def _bind(control: str, n: int) -> None:
    options = {"data_folder_in": control, "data_folder_out": control, "control_folder": control}
    with Connection(transport="runner.broker:Transport", transport_options=options) as conn:
        for i in range(100):  # each exchange's table is created by whoever comes first
            conn.default_channel._queue_bind(f"x{i}", f"k{n}", "", f"q{n}")


def test_processes_binding_at_once_keep_every_binding(tmp_path: Path) -> None:
    """kombu's own table writes could interleave (a new table is opened with "wb" before it
    is locked): the table was left unreadable and every remote-control reply was lost."""
    from multiprocessing import get_context

    procs = [get_context("fork").Process(target=_bind, args=(str(tmp_path), n))
             for n in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    options = {"control_folder": str(tmp_path), "data_folder_in": str(tmp_path),
               "data_folder_out": str(tmp_path)}
    with Connection(transport="runner.broker:Transport", transport_options=options) as conn:
        channel = conn.default_channel
        assert [len(channel.get_table(f"x{i}")) for i in range(100)] == [6] * 100
        channel._delete("q0", "x0", "k0", "")
        assert sorted(q.queue for q in channel.get_table("x0")) == [f"q{n}" for n in range(1, 6)]
