"""The notifier: one per store (it holds keys.NOTIFIER) takes items off the store's notify
feed (finished runs; keys.approval of an approval node opening, whose notifications are the
run's; keys.late(RUN_ID) of a late run and keys.refused(COMMIT) of a refused revision, each
with an outbox entry of its own; none of these is the run's id, so taking one off the feed
never takes off a run's end added meanwhile), writes each one's notifications to
its outbox entry once (a run's event never goes out twice, whoever ends it; an approval once
per node and attempt), sends them, tries a failed one again with a doubling backoff up to
RUNNER_NOTIFY_ATTEMPTS times, records each try in the run record's `notifications` (a refused
revision's: in its entry), and takes the item off the feed when every one is sent or given
up. It never writes a run's state: a notification cannot block or fail a run."""

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
from runner.notify import refused
from runner.notify.events import LATE, events, message, routes, waiting
from runner.notify.send import send
from runner.runs import FINAL, RunRecord
from runner.settings import Settings
from runner.store import Store, keys

LOCK_TTL = 30.0  # seconds; renewed every RENEW s (a try takes at most RUNNER_NOTIFY_TIMEOUT)
RENEW = 5.0
FEED = 1000  # runs looked at per pass
PENDING = {"tries": 0, "next": 0.0, "status": "pending"}  # an outbox item not tried yet
log = logging.getLogger("runner.notify")


def collect(store: Store, config: ConfigSet, record: RunRecord, item: str) -> dict[str, Any]:
    """The outbox entry of feed item `item` with what it owes by now added, once each: of
    keys.late(RUN_ID), its `late` (put_new); of a run, an `approval` per node waiting (and
    attempt), and its end's events once it ended (the first writer's: put_new). An entry
    without `ended` was written when the run ended, whole."""
    key, final = keys.outbox(item), record.state in FINAL
    entry = store.get(key)
    if item == keys.late(record.run_id):
        return entry or store.put_new(key, {"run_id": record.run_id, "items": [
            {"event": e, "channel": c, **PENDING} for e, c in routes(
                config, str(record.job), [LATE])]})
    if entry is None and final:  # the common case: one write (nothing waits any more)
        return store.put_new(key, {"run_id": record.run_id, "items": ends(store, config, record)})
    entry = entry or {"run_id": record.run_id, "items": [], "ended": False}
    have = {(i["event"], i["channel"], i.get("node"), i.get("attempt")) for i in entry["items"]}
    new = [{"event": "approval", "channel": c, "node": node, "attempt": n, **PENDING}
           for node, n in waiting(record) for _, c in routes(config, str(record.job), ["approval"])
           if ("approval", c, node, n) not in have]
    ended = final and not entry.get("ended", True)
    if ended:
        new, entry["ended"] = new + ends(store, config, record), True
    if new or ended:
        entry["items"] += new
        store.put(key, entry)
    return entry


def ends(store: Store, config: ConfigSet, record: RunRecord) -> list[dict[str, Any]]:
    """The notifications of a finished run's end."""
    happened = events(record, None)
    if happened == ["succeeded"] and any(e == "recovered" for e, _ in routes(
            config, str(record.job), ["recovered"])):  # only then is the run before read
        happened = events(record, previous(store, record))
    return [{"event": e, "channel": c, **PENDING}
            for e, c in routes(config, str(record.job), happened)]


def previous(store: Store, record: RunRecord) -> Any:
    """The state of the job's last finished run created before `record`'s, or None. By
    `created` (microseconds), then id: two ids of the same millisecond sort by chance."""
    def when(r: RunRecord) -> tuple[float, str]:
        return r.created or 0.0, r.run_id

    before = [r for r in store.runs(record.job, limit=20)
              if r.state in FINAL and when(r) < when(record)]
    return max(before, key=when).state if before else None


def attempt(store: Store, config: ConfigSet, settings: Settings, env: Mapping[str, str],
            record: RunRecord, item: dict[str, Any], now: float) -> None:
    """One try of `item` of a run (changed in place); the try is appended to the run record."""
    node = item.get("node")
    flow = config.workflows.get(str(record.job))
    asked = next((n.approval for n in flow.nodes if n.name == node), None) if flow else None
    done = deliver(config, settings, env, item, message(
        record, item["event"], settings.public_url, node, asked), now)
    tries = list((store.run(record.run_id) or record).notifications or ())
    store.update_run(record.run_id, {"notifications": [*tries, done]})
    if done["error"]:
        log.warning("run %s, %s: %s; %s", record.run_id, item["event"], done["error"],
                    "given up" if done["status"] == "failed" else "tried again later")


def deliver(config: ConfigSet, settings: Settings, env: Mapping[str, str],
            item: dict[str, Any], m: dict[str, Any], now: float) -> dict[str, Any]:
    """One try of sending `m` as `item` says (changed in place: tries, status, next): the
    try as the audit records it."""
    channel = config.notifications.channels.get(item["channel"])
    error = None
    try:
        if channel is None:
            raise NotifyError(f"channel {item['channel']} is no longer in notifications.yaml")
        url = config_secret(channel.url, f"channel {channel.name}", env, settings)
        send(channel, url, m, settings.notify_timeout)
    except (NotifyError, TargetError) as e:  # TargetError: SecretUnavailable
        error = str(e)
    item["tries"] += 1
    last = error is not None and (channel is None or item["tries"] >= settings.notify_attempts)
    item["status"] = "sent" if error is None else "failed" if last else "pending"
    item["next"] = now + settings.notify_backoff * 2 ** (item["tries"] - 1)
    return {"channel": item["channel"], "event": item["event"], "at": round(now, 3),
            "status": "sent" if error is None else "failed" if last else "retrying",
            "error": error,
            **({"node": item["node"]} if item.get("node") else {})}


def look(store: Store, config: ConfigSet, settings: Settings, env: Mapping[str, str],
         now: Callable[[], float] = time.time) -> None:
    """One pass over the notify feed: collects, sends what is due, settles."""
    settled = []
    ids = store.to_publish(FEED, keys.NOTIFY)
    if not config.notifications.channels:  # nothing to say: the runs leave the feed unread
        store.published(ids, keys.NOTIFY)
        return
    for note in ids:
        if note.startswith(keys.refused("")):
            done = refused.settle(store, config, settings, env, note, now(), deliver)
        else:
            done = settle(store, config, settings, env, note, now)
        if done:
            settled.append(note)
    store.published(settled, keys.NOTIFY)


def settle(store: Store, config: ConfigSet, settings: Settings, env: Mapping[str, str],
           item: str, now: Callable[[], float]) -> bool:
    """Sends what feed item `item` (a run's id, keys.late or keys.approval of one) owes that is
    due: whether nothing is left to send. An approval's are the run's (its outbox entry)."""
    box = item.removeprefix(keys.APPROVAL).partition(":")[0] if item.startswith(
        keys.APPROVAL) else item  # the outbox entry's item
    record = store.run(box.removeprefix(keys.late("")))
    if record is None or record.job is None:
        return True
    entry = collect(store, config, record, box)
    due = [i for i in entry["items"] if i["status"] == "pending" and i["next"] <= now()]
    for one in due:
        attempt(store, config, settings, env, record, one, now())
    if due:
        store.put(keys.outbox(box), entry)
    return all(i["status"] != "pending" for i in entry["items"])


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
