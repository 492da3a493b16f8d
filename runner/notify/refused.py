"""The `refused` notice of a revision the reconciler refused (invalid, or unsigned): written
once per commit to its outbox entry (keys.outbox(keys.refused(COMMIT))) and put on the
notify feed; the notifier routes it with the applied configuration's rules (the refused one
is not trusted) and records each try in that entry, which `runner status` shows."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from runner.config.model import ConfigSet
from runner.notify.events import refusal, routes
from runner.settings import Settings
from runner.store import Store, keys

ERRORS = 5  # the first errors a notice quotes
Deliver = Callable[[ConfigSet, Settings, Mapping[str, str], dict[str, Any], dict[str, Any],
                    float], dict[str, Any]]


def note(store: Store, revision: str, author: str, subject: str, reason: str,
         errors: list[str]) -> None:
    """Records the notice of refused `revision` unless it was (a refused head polled again)."""
    at = time.time()
    notice = {"revision": revision, "author": author, "subject": subject, "reason": reason,
              "errors": errors[:ERRORS], "at": at, "items": None, "notifications": []}
    if store.put_new(keys.outbox(keys.refused(revision)), notice)["at"] == at:
        store.to_notify(keys.refused(revision), at)


def settle(store: Store, config: ConfigSet, settings: Settings, env: Mapping[str, str],
           note_id: str, now: float, deliver: Deliver) -> bool:
    """Sends what the notice `note_id` owes that is due: whether nothing is left to send."""
    entry = store.get(keys.outbox(note_id))
    if entry is None:
        return True
    routed = entry["items"] is None
    if routed:  # once, by the first notifier that reads it
        entry["items"] = [{"event": e, "channel": c, "tries": 0, "next": 0.0,
                           "status": "pending"} for e, c in routes(config, None, ["refused"])]
    due = [i for i in entry["items"] if i["status"] == "pending" and i["next"] <= now]
    m = refusal(entry, settings.public_url)
    entry["notifications"] += [deliver(config, settings, env, i, m, now) for i in due]
    if routed or due:
        store.put(keys.outbox(note_id), entry)
    return all(i["status"] != "pending" for i in entry["items"])


def notice(store: Store, revision: str | None) -> dict[str, Any] | None:
    """The notice of refused `revision` with its tries (`runner status`), or None."""
    entry = store.get(keys.outbox(keys.refused(revision))) if revision else None
    return None if entry is None else {k: entry.get(k) for k in (
        "revision", "author", "at", "notifications")}
