"""Pure: the events of a run's end (and `late`, of a run not finished by its deadline), the
channels they go to, and the message that says so."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from runner.config.model import ConfigSet, Notify
from runner.runs import RunRecord, RunState

EVENTS = {RunState.SUCCESS: "succeeded", RunState.FAILURE: "failed",
          RunState.REVOKED: "cancelled", RunState.MISSED: "missed",
          RunState.SKIPPED: "skipped"}  # approval, refused: not yet
LATE = "late"  # a run not finished by its deadline (celery/late.py): while it is active


def events(record: RunRecord, previous: RunState | None) -> list[str]:
    """The events of `record`'s end; `previous` is the state of the job's run before it
    (recovered: it succeeded after that one failed)."""
    event = EVENTS.get(record.state) if record.state else None
    if event is None:
        return []
    return [event, "recovered"] if event == "succeeded" and previous == RunState.FAILURE else [
        event]


def routes(config: ConfigSet, job: str, happened: list[str]) -> list[tuple[str, str]]:
    """(event, channel) for each event of `happened` a rule or the job's notify: sends, once
    each, in the order of the rules."""
    found = config.jobs.get(job) or config.workflows.get(job)
    own: tuple[Notify, ...] = found.notify if found else ()
    out: dict[tuple[str, str], None] = {}
    for rule in (*config.notifications.rules, *own):
        if any(fnmatchcase(job, g) for g in rule.jobs):
            for event in happened:
                if event in rule.on:
                    out.update(dict.fromkeys((event, c) for c in rule.channels
                                             if c in config.notifications.channels))
    return list(out)


def message(record: RunRecord, event: str, public_url: str) -> dict[str, Any]:
    """The JSON a webhook receives (the other channels render `text` of it)."""
    failed = {name: t.get("error") or t.get("status")
              for name, t in ((record.result or {}).get("targets") or {}).items()
              if t.get("status") not in ("success", "skipped")}
    link = f"{public_url}/#run={record.run_id}" if public_url else None
    return {"event": event, "job": record.job, "run_id": record.run_id,
            "status": record.state.value if record.state else None, "error": record.error,
            "failed_targets": failed, "revision": record.revision, "link": link}


def text(m: dict[str, Any]) -> str:
    """The message as a few lines of plain text (Slack, email)."""
    lines = [f"runner: job {m['job']} {m['event']} (run {m['run_id']}, {m['status']})"]
    if m.get("error"):
        lines.append(f"error: {m['error']}")
    lines += [f"target {name} failed: {why}" for name, why in m["failed_targets"].items()]
    lines.append(f"config revision: {(m.get('revision') or 'unknown')[:12]}")
    if m.get("link"):
        lines.append(m["link"])
    return "\n".join(lines)
