"""The embedded broker writes each message whole before a consumer can see it."""

from __future__ import annotations

from pathlib import Path
from queue import Empty

import pytest
from kombu import Connection, Exchange, Queue
from kombu.transport import virtual

FSBROKER = "runner.celery.fsbroker:Transport"  # kombu names a transport by its path


def test_a_consumer_never_sees_a_message_being_written(tmp_path: Path) -> None:
    folder, processed = tmp_path / "queue", tmp_path / "processed"
    folder.mkdir()
    processed.mkdir()
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder),
               "processed_folder": str(processed)}
    with Connection(transport=FSBROKER, transport_options=options) as conn:
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


def test_without_inotify_a_consumer_polls_often_for_a_second_after_a_message_then_less(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import runner.celery.fsbroker as broker

    monkeypatch.setattr(broker.inotify, "open_folder", lambda path: None)  # not Linux
    now = [100.0]
    pauses: list[float] = []

    def sleep(seconds: float) -> None:  # the transport's pause, on a fake clock
        pauses.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(broker, "monotonic", lambda: now[0])
    monkeypatch.setattr(broker, "sleep", sleep)
    folder, processed, control = (tmp_path / d for d in ("queue", "processed", "control"))
    for d in (folder, processed, control):
        d.mkdir()
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder),
               "processed_folder": str(processed), "polling_interval": 0.05,
               "control_folder": str(control)}  # kombu's default: ./control, in the cwd
    with Connection(transport=FSBROKER, transport_options=options) as conn:
        got: list[object] = []
        queue = conn.SimpleQueue(f"jobs-{tmp_path.name}")  # see _consumer_latency
        consumer = conn.Consumer(queue.queue, callbacks=[lambda body, m: got.append(body)])
        with consumer:
            with pytest.raises(TimeoutError):
                conn.drain_events(timeout=0.2)
            assert set(pauses) == {0.05}  # idle: the configured interval
            queue.put({"n": 1})
            conn.drain_events(timeout=0.2)
            assert got == [{"n": 1}]
            pauses.clear()
            with pytest.raises(TimeoutError):
                conn.drain_events(timeout=0.1)
            assert set(pauses) == {broker.Transport.BUSY}  # just after a message: often
            pauses.clear()
            now[0] += broker.Transport.BUSY_FOR
            with pytest.raises(TimeoutError):
                conn.drain_events(timeout=0.2)
            assert set(pauses) == {0.05}  # a second later: idle again


def _consumer_latency(tmp_path: Path) -> tuple[list[float], int]:
    """Seconds from put to delivery of 5 messages put by another thread into an idle
    consumer's queue, and how often the consumer listed the folder while idle for 1 s."""
    import threading
    import time

    import runner.celery.fsbroker as broker

    folder, processed, control = (tmp_path / d for d in ("queue", "processed", "control"))
    for d in (folder, processed, control):
        d.mkdir()
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder),
               "processed_folder": str(processed), "polling_interval": 0.05,
               "control_folder": str(control)}  # kombu's default: ./control, in the cwd
    looks = [0]
    get = broker.Channel._get

    def counted(self: broker.Channel, queue: object, timeout: object = None) -> object:
        looks[0] += 1
        return get(self, queue, timeout)

    latencies: list[float] = []
    with Connection(transport=FSBROKER, transport_options=options) as conn, \
            Connection(transport=FSBROKER, transport_options=options) as out:
        broker.Channel._get = counted  # type: ignore[method-assign]
        try:
            # a name of its own: kombu remembers declared exchanges per process, not per folder
            name = f"jobs-{tmp_path.name}"
            queue, sender = conn.SimpleQueue(name), out.SimpleQueue(name)
            got: list[float] = []
            with conn.Consumer(queue.queue, callbacks=[lambda body, m: (
                    got.append(time.monotonic() - body["at"]), m.ack())]):
                with pytest.raises(TimeoutError):
                    conn.drain_events(timeout=1.0 + broker.Transport.BUSY_FOR)  # idle
                idle_looks = looks[0]
                for _ in range(5):
                    conn.transport._last = -broker.Transport.BUSY_FOR  # idle, not busy
                    put = threading.Timer(0.2, lambda: sender.put({"at": time.monotonic()}))
                    put.start()
                    conn.drain_events(timeout=5)
                    put.join()
                latencies = got
        finally:
            broker.Channel._get = get  # type: ignore[method-assign]
    return latencies, idle_looks


def test_an_idle_consumer_takes_a_message_at_once_without_polling(tmp_path: Path) -> None:
    latencies, idle_looks = _consumer_latency(tmp_path)
    assert len(latencies) == 5
    assert max(latencies) < 0.25, latencies  # at once (a loaded machine adds its delays)
    assert idle_looks <= 4, idle_looks  # inotify: one look a second, not 20 (polling)


def test_without_inotify_an_idle_consumer_still_takes_messages(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import runner.celery.fsbroker as broker

    monkeypatch.setattr(broker.inotify, "open_folder", lambda path: None)
    latencies, idle_looks = _consumer_latency(tmp_path)
    assert len(latencies) == 5
    assert max(latencies) < 0.5, latencies  # the 50 ms polling interval
    assert idle_looks > 10  # it polled




def _bind(control: str, n: int) -> None:
    options = {"data_folder_in": control, "data_folder_out": control, "control_folder": control}
    with Connection(transport=FSBROKER, transport_options=options) as conn:
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
    with Connection(transport=FSBROKER, transport_options=options) as conn:
        channel = conn.default_channel
        assert [len(channel.get_table(f"x{i}")) for i in range(100)] == [6] * 100
        channel._delete("q0", "x0", "k0", "")
        assert sorted(q.queue for q in channel.get_table("x0")) == [f"q{n}" for n in range(1, 6)]


def test_an_event_queue_whose_receiver_has_gone_is_unbound_and_emptied(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """kombu's file transport never deletes a queue: a `celery events` or Flower that had gone
    collected every worker's heartbeat as a file for ever."""
    now, folder, options = _expiry_world(tmp_path, monkeypatch)
    events = Exchange("celeryev", type="topic")
    with Connection(transport=FSBROKER, transport_options=options) as conn:
        live, gone = (Queue(f"celeryev.{n}", events, routing_key="#") for n in ("live", "gone"))
        for q in (live, gone):
            q(conn.default_channel).declare()
        producer = conn.Producer(exchange=events)

        def files(queue: str) -> int:
            return sum(1 for p in folder.iterdir() if p.name.endswith(f".{queue}.msg"))

        for n in range(4):  # a heartbeat every 25 s; only `live` is read
            producer.publish({"type": "worker-heartbeat"}, routing_key="worker.heartbeat")
            assert live(conn.default_channel).get() is not None
            # the fourth finds the first unread after 75 s: gone
            assert files("celeryev.gone") == [1, 2, 3, 0][n]
            now[0] += 25
        assert [q.queue for q in conn.default_channel.get_table("celeryev")] == ["celeryev.live"]


def test_a_dead_workers_remote_control_queue_is_unbound_and_emptied(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker killed without its shutdown left its pidbox queue bound: every broadcast (the
    API asks every few seconds) added a file to it for ever."""
    now, folder, options = _expiry_world(tmp_path, monkeypatch)
    pidbox = Exchange("celery.pidbox", type="fanout")
    with Connection(transport=FSBROKER, transport_options=options) as conn:
        live, gone = (Queue(f"{n}@host.celery.pidbox", pidbox) for n in ("live", "gone"))
        for q in (live, gone):
            q(conn.default_channel).declare()
        producer = conn.Producer(exchange=pidbox)

        def files(queue: str) -> int:
            return sum(1 for p in folder.iterdir() if p.name.endswith(f".{queue}.msg"))

        for n in range(4):  # a broadcast every 25 s; only `live` reads its queue
            producer.publish({"method": "ping"})
            assert live(conn.default_channel).get() is not None
            assert files("gone@host.celery.pidbox") == [1, 2, 3, 0][n]
            now[0] += 25
        assert [q.queue for q in conn.default_channel.get_table("celery.pidbox")] == [
            "live@host.celery.pidbox"]


def _expiry_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                  ) -> tuple[list[float], Path, dict[str, str]]:
    """A fake clock for the broker, its folders, and a BrokerState of the test's own (kombu
    keeps declared exchanges per process: ours must not meet the ones Celery declares in
    later tests of this process, same names with other arguments)."""
    import runner.celery.fsbroker as broker

    now = [100.0]
    monkeypatch.setattr(broker, "monotonic", lambda: now[0])
    monkeypatch.setattr(broker.Transport, "global_state", virtual.BrokerState())
    for d in ("queue", "processed", "control"):
        (tmp_path / d).mkdir()
    folder = tmp_path / "queue"
    return now, folder, {"data_folder_in": str(folder), "data_folder_out": str(folder),
                         "processed_folder": str(tmp_path / "processed"),
                         "control_folder": str(tmp_path / "control")}
