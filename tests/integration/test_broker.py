"""The embedded broker writes each message whole before a consumer can see it."""

from __future__ import annotations

from pathlib import Path
from queue import Empty

import pytest
from kombu import Connection


def test_a_consumer_never_sees_a_message_being_written(tmp_path: Path) -> None:
    folder, processed = tmp_path / "queue", tmp_path / "processed"
    folder.mkdir()
    processed.mkdir()
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder),
               "processed_folder": str(processed)}
    with Connection(transport="runner.broker:Transport", transport_options=options) as conn:
        channel = conn.default_channel
        # a message caught mid-write (what kombu's own transport let a consumer read, empty)
        (folder / ".1_x.jobs.msg.partial").write_bytes(b"")
        with pytest.raises(Empty):
            channel._get("jobs")
        channel._put("jobs", {"body": "hello"})
        assert sorted(p.name.endswith(".jobs.msg") for p in folder.iterdir()) == [False, True]
        assert channel._get("jobs") == {"body": "hello"}
        assert list(processed.iterdir()) == []  # read and gone, not kept for ever
        with pytest.raises(Empty):
            channel._get("jobs")
