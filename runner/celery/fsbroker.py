"""The embedded broker: kombu's filesystem transport with messages written atomically.

kombu creates a message file, then locks and writes it; a consumer moves and reads files
without looking at the lock, so it could read a message before it was written, and the
worker died on the empty payload (JSONDecodeError) — seen under load with a few hundred
queued runs. Here a message is written under a name no consumer matches (a leading dot),
then renamed into place: a consumer sees it whole or not at all.

A consumer claims a message by renaming it into the processed folder (one rename wins), reads
it and deletes it; kombu kept every processed message there for ever (`store_processed`).

kombu's transport only polls. Here an idle consumer waits on inotify for a message file to
be moved into the queue folder (runner/adapters/inotify.py; looking anyway every IDLE seconds), so
an idle worker costs nothing and a message is taken at once. Where inotify is missing, or
while the consumer's prefetch is full (a run ending frees a slot and writes no file), it
polls: every `polling_interval` (an idle worker wakes seldom), but every BUSY seconds for
BUSY_FOR seconds after a message arrived: kombu's fixed interval capped a busy worker at about
two messages per interval (its prefetch) and left each run waiting for the next poll.

Exchange tables (which queues an exchange routes to, one JSON file each) are replaced the
same way, under a lock file: kombu opens a new table with "wb" before it locks it, so two
processes binding at once (two workers starting, the API's remote control beside them) could
leave a table of one write followed by the tail of another, unreadable for good — every
remote-control reply was then lost (the API showed no worker) until .runner/ was removed.
A table left so by an earlier version is read up to its first whole document.

kombu's file transport never deletes a queue, not even an auto-delete one: a receiver of
Celery's events (`celery events`, Flower) that has gone would collect every worker's heartbeat
(every 2 s) and task events as files for ever. An event message still unread EVENTS_EXPIRE
seconds after it was written (a live receiver reads it within milliseconds) means its receiver
has gone, as Celery's event_queue_expires means for other brokers: the queue is unbound and
emptied. The same holds for a worker's remote-control queue (`NAME@HOST.celery.pidbox`): a
worker killed without its shutdown left it bound, and every broadcast (the API asks every few
seconds) added a file to it for ever. Each publisher watches one of its messages per queue at a
time (a stat).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from queue import Empty
from time import monotonic, sleep
from typing import Any, ClassVar

from kombu.exceptions import ChannelError
from kombu.transport import filesystem, virtual
from kombu.utils.json import dumps, loads

from runner.adapters import inotify

EVENTS = "celeryev"  # Celery's event exchange, and the prefix of its receivers' queues
PIDBOX = "celery.pidbox"  # Celery's broadcast exchange, and the suffix of its workers' queues
EVENTS_EXPIRE = 60.0  # seconds a message may stay unread before its receiver counts as gone


def _expiring(queue: str) -> str | None:
    """The fanout exchange of `queue` when it is one whose receiver may vanish, else None."""
    if queue.startswith(f"{EVENTS}."):
        return EVENTS
    return PIDBOX if queue.endswith(f".{PIDBOX}") and ".reply." not in queue else None


class Channel(filesystem.Channel):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self._watched: dict[str, tuple[str, float]] = {}  # event queue: (a message put, when)

    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        exchange = _expiring(queue)
        if exchange is not None and self._abandoned(exchange, queue, name):
            return
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".{name}.partial")
        try:
            with open(partial, "wb") as f:
                f.write(dumps(payload).encode("utf-8"))  # type: ignore[no-untyped-call]
            os.replace(partial, final)
        except OSError as e:  # a full or read-only disk: no partial file left behind
            with contextlib.suppress(OSError):
                os.remove(partial)
            raise ChannelError(f"cannot add message file {final!r}: {e}") from e

    def _get(self, queue: Any, timeout: Any = None) -> Any:
        wanted = f"{queue}.msg"
        for name in sorted(os.listdir(self.data_folder_in)):
            if name.partition(".")[2] != wanted:
                continue
            claimed = os.path.join(self.processed_folder, name)
            try:
                os.rename(os.path.join(self.data_folder_in, name), claimed)
            except OSError:
                continue  # another consumer took it
            try:
                with open(claimed, "rb") as f:
                    payload = f.read()
            except OSError as e:
                raise ChannelError(f"cannot read message file {claimed!r}: {e}") from e
            finally:
                with contextlib.suppress(OSError):
                    os.remove(claimed)
            return loads(payload)  # type: ignore[no-untyped-call]
        raise Empty()

    def _abandoned(self, exchange: str, queue: str, name: str) -> bool:
        """Whether the receiver of `queue` (bound to fanout `exchange`) has gone (the message
        this channel watches is unread after EVENTS_EXPIRE): then the queue is unbound and
        emptied. Otherwise `name` becomes the message watched when the last one was read."""
        watched, now = self._watched, monotonic()
        last = watched.get(queue)
        if last is not None and now - last[1] < EVENTS_EXPIRE:
            return False
        if last is not None and os.path.exists(os.path.join(self.data_folder_out, last[0])):
            del watched[queue]
            self._edit(exchange, lambda rows: [r for r in rows if r[2] != queue])
            self._purge(queue)  # type: ignore[no-untyped-call]
            return True
        watched[queue] = (name, now)
        return False

    def get_table(self, exchange: str) -> list[Any]:
        return [filesystem.exchange_queue_t(*q) for q in self._table(exchange)]

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str,
                    queue: str) -> None:
        row = [routing_key or "", pattern or "", queue or ""]
        self._edit(exchange, lambda rows: rows if row in rows else [row, *rows])

    def _delete(self, queue: str, exchange: str, routing_key: str, pattern: str,
                *args: Any, **kwargs: Any) -> None:
        virtual.Channel._delete(  # type: ignore[no-untyped-call]  # purges the queue
            self, queue, exchange, routing_key, pattern, *args, **kwargs)
        row = [routing_key or "", pattern or "", queue or ""]
        self._edit(exchange, lambda rows: [r for r in rows if r != row])

    def _table(self, exchange: str) -> list[list[str]]:
        file: Path = self._exchange_file(exchange)  # type: ignore[no-untyped-call]
        try:
            text = file.read_text()
        except FileNotFoundError:
            return []
        except OSError as e:
            raise ChannelError(f"cannot read exchange table {str(file)!r}: {e}") from e
        try:
            rows = json.JSONDecoder().raw_decode(text)[0] if text.strip() else []
        except ValueError as e:
            raise ChannelError(f"exchange table {str(file)!r} is not JSON ({e}); stop "
                               "runner and remove it, the processes bind again") from e
        return [list(r) for r in rows]

    def _edit(self, exchange: str, change: Callable[[list[list[str]]], list[list[str]]]
              ) -> None:
        file: Path = self._exchange_file(exchange)  # type: ignore[no-untyped-call]
        try:
            self.control_folder.mkdir(exist_ok=True)
            with open(f"{file}.lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                rows = self._table(exchange)
                new = change(rows)
                if new != rows:
                    partial = f"{file.parent}/.{file.name}.{uuid.uuid4()}.partial"
                    try:
                        with open(partial, "w") as f:
                            f.write(json.dumps(new))
                        os.replace(partial, file)
                    except OSError:
                        with contextlib.suppress(OSError):
                            os.remove(partial)
                        raise
        except OSError as e:
            raise ChannelError(f"cannot update exchange table {str(file)!r}: {e}") from e


class Transport(filesystem.Transport):
    Channel = Channel
    # no host to connect to: kombu would warn "No hostname was supplied" on each connection
    default_connection_params: ClassVar[dict[str, Any]] = {"port": None, "hostname": None}
    BUSY = 0.005     # seconds between looks while busy
    BUSY_FOR = 1.0   # seconds a consumer stays busy after a message
    IDLE = 1.0       # seconds an idle consumer waits on inotify before it looks anyway
    _last = -BUSY_FOR
    _folder: inotify.Folder | None = None
    _watching = False

    def drain_events(self, connection: Any, timeout: float | None = None, **_: Any) -> None:
        start, cycle = monotonic(), self.cycle
        assert cycle is not None  # set in __init__
        folder = self._watch()
        while True:
            try:
                cycle.get(self._deliver, timeout=timeout)  # type: ignore[no-untyped-call]
            except Empty:
                now = monotonic()
                if timeout is not None and now - start >= timeout:
                    raise TimeoutError() from None  # socket.timeout, as kombu raises
                left = self.IDLE if timeout is None else timeout - (now - start)
                if folder is not None and self._can_consume():
                    folder.wait(min(self.IDLE, left))  # until a message file arrives
                    continue
                # no inotify, or the prefetch is full (a run ending frees a slot, no file)
                pause = (self.BUSY if now - self._last < self.BUSY_FOR
                         else self.polling_interval or self.BUSY)
                sleep(min(pause, timeout) if timeout else pause)
            else:
                self._last = monotonic()
                return

    def _watch(self) -> inotify.Folder | None:
        """The inotify watch of the queue folder, opened at the first drain (None: poll)."""
        if not self._watching:
            self._watching = True
            folder = getattr(self.client, "transport_options", {}).get("data_folder_in")
            self._folder = inotify.open_folder(folder) if folder else None
        return self._folder

    def _can_consume(self) -> bool:
        """Whether every consuming channel may take a message now (its prefetch not full)."""
        return all(ch.qos.can_consume() for ch in self.channels if ch._consumers)

    def close_connection(self, connection: Any) -> None:
        if self._folder is not None:
            self._folder.close()
            self._folder = None
        super().close_connection(connection)  # type: ignore[no-untyped-call]
