"""The notifier: one per store (it holds keys.NOTIFIER) takes finished runs off the store's
notify feed, writes each run's notifications to its outbox entry once (put_new: a run's
event never goes out twice, whoever ends it), sends them, tries a failed one again with a
doubling backoff up to RUNNER_NOTIFY_ATTEMPTS times, records each try in the run record's
`notifications`, and takes the run off the feed when every one is sent or given up. It never
writes a run's state: a notification cannot block or fail a run. A run's `late` event comes
on the feed as an item of its own (keys.late(RUN_ID), put there once by celery/late.py) with
an outbox entry of its own, so it never stands for, or in the way of, the events of the end."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from runner.config.model import ConfigSet
from runner.errors import NotifyError, RunnerError, StoreUnavailable, TargetError
from runner.executor.secrets import config_secret
from runner.notify.events import LATE, events, message, routes
from runner.notify.send import send
from runner.runs import FINAL, RunRecord
from runner.settings import Settings
from runner.store import Store, keys

LOCK_TTL = 30.0  # seconds; renewed every RENEW s (a try takes at most RUNNER_NOTIFY_TIMEOUT)
RENEW = 5.0
FEED = 1000  # runs looked at per pass
log = logging.getLogger("runner.notify")


def collect(store: Store, config: ConfigSet, record: RunRecord, item: str) -> dict[str, Any]:
    """The outbox entry of feed item `item` (a finished run's id, or keys.late of a late
    run): written once, the first time (put_new)."""
    happened = [LATE] if item == keys.late(record.run_id) else events(record, None)
    if happened == ["succeeded"] and any(e == "recovered" for e, _ in routes(
            config, str(record.job), ["recovered"])):  # only then is the run before read
        happened = events(record, previous(store, record))
    items = [{"event": e, "channel": c, "tries": 0, "next": 0.0, "status": "pending"}
             for e, c in routes(config, str(record.job), happened)]
    return store.put_new(keys.outbox(item), {"run_id": record.run_id, "items": items})


def previous(store: Store, record: RunRecord) -> Any:
    """The state of the job's last finished run created before `record`'s, or None."""
    for r in store.runs(record.job, limit=20):
        if r.run_id < record.run_id and r.state in FINAL:
            return r.state
    return None


def attempt(store: Store, config: ConfigSet, settings: Settings, env: Mapping[str, str],
            record: RunRecord, item: dict[str, Any], now: float) -> None:
    """One try of `item` (changed in place); the try is appended to the run record."""
    channel = config.notifications.channels.get(item["channel"])
    error = None
    try:
        if channel is None:
            raise NotifyError(f"channel {item['channel']} is no longer in notifications.yaml")
        url = config_secret(channel.url, f"channel {channel.name}", env, settings)
        send(channel, url, message(record, item["event"], settings.public_url),
             settings.notify_timeout)
    except (NotifyError, TargetError) as e:  # TargetError: SecretUnavailable
        error = str(e)
    item["tries"] += 1
    last = error is not None and (channel is None or item["tries"] >= settings.notify_attempts)
    item["status"] = "sent" if error is None else "failed" if last else "pending"
    item["next"] = now + settings.notify_backoff * 2 ** (item["tries"] - 1)
    done = {"channel": item["channel"], "event": item["event"], "at": round(now, 3),
            "status": "sent" if error is None else "failed" if last else "retrying",
            "error": error}
    tries = list((store.run(record.run_id) or record).notifications or ())
    store.update_run(record.run_id, {"notifications": [*tries, done]})
    if error:
        log.warning("run %s, %s: %s%s", record.run_id, item["event"], error,
                    "; given up" if last else f"; try {item['tries'] + 1} later")


def look(store: Store, config: ConfigSet, settings: Settings, env: Mapping[str, str],
         now: Callable[[], float] = time.time) -> None:
    """One pass over the notify feed: collects, sends what is due, settles."""
    settled = []
    ids = store.to_publish(FEED, keys.NOTIFY)
    if not config.notifications.channels:  # nothing to say: the runs leave the feed unread
        store.published(ids, keys.NOTIFY)
        return
    for feed_item in ids:
        record = store.run(feed_item.removeprefix(keys.late("")))
        if record is None or record.job is None:
            settled.append(feed_item)
            continue
        entry = store.get(keys.outbox(feed_item)) or collect(store, config, record, feed_item)
        due = [i for i in entry["items"] if i["status"] == "pending" and i["next"] <= now()]
        for item in due:
            attempt(store, config, settings, env, record, item, now())
        if due:
            store.put(keys.outbox(feed_item), entry)
        if all(i["status"] != "pending" for i in entry["items"]):
            settled.append(feed_item)
    store.published(settled, keys.NOTIFY)


def serve(store: Store, config: Callable[[], ConfigSet], settings: Settings,
          env: Mapping[str, str], stop: threading.Event, poll: float = 0.5) -> None:
    """look() every `poll` seconds until `stop`, while this process holds the lock. Idle (an
    empty feed) it costs one small read a look: the lease is renewed every RENEW seconds and
    the configuration is read only when a run is on the feed."""
    owner = uuid.uuid4().hex[:8]
    held, renewed = False, -LOCK_TTL
    while not stop.is_set():
        try:
            if not held or time.monotonic() - renewed >= RENEW:
                held, renewed = store.lock(keys.NOTIFIER, owner, LOCK_TTL), time.monotonic()
            if held and store.to_publish(1, keys.NOTIFY):
                look(store, config(), settings, env)
        except StoreUnavailable as e:  # the feed keeps the runs until it is back
            log.warning("%s; notifications wait", e)
            stop.wait(5.0)
        except RunnerError as e:  # no configuration applied yet, or it cannot be read
            log.warning("notifications wait: %s", e)
            stop.wait(5.0)
        except Exception:  # a bug must not end the thread: runs would go unannounced
            log.exception("notifier: unexpected error; trying again in 5s")
            stop.wait(5.0)
        stop.wait(poll)


def start(store: Store, config: Callable[[], ConfigSet], settings: Settings,
          env: Mapping[str, str], stop: threading.Event) -> threading.Thread:
    """serve() on a daemon thread of its own (the publisher's process runs it)."""
    thread = threading.Thread(target=serve, args=(store, config, settings, env, stop),
                              name="notifier", daemon=True)
    thread.start()
    return thread
