"""Pure: the events of a run (its end, `late` of a run not finished by its deadline, its
approvals waiting) and of a refused revision, the channels they go to, and the message that
says so."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from runner.config.model import ConfigSet, Notify
from runner.runs import RunRecord, RunState

EVENTS = {RunState.SUCCESS: "succeeded", RunState.FAILURE: "failed",
          RunState.REVOKED: "cancelled", RunState.MISSED: "missed",
          RunState.SKIPPED: "skipped"}
LATE = "late"  # a run not finished by its deadline (celery/late.py): while it is active


def events(record: RunRecord, previous: RunState | None) -> list[str]:
    """The events of `record`'s end; `previous` is the state of the job's run before it
    (recovered: it succeeded after that one failed)."""
    event = EVENTS.get(record.state) if record.state else None
    if event is None:
        return []
    return [event, "recovered"] if event == "succeeded" and previous == RunState.FAILURE else [
        event]


def waiting(record: RunRecord) -> list[tuple[str, int]]:
    """(node, attempt) of each approval node of a workflow run's record waiting now."""
    nodes = (record.workflow or {}).get("nodes") or {}
    return [(name, int(n.get("attempt") or 1)) for name, n in nodes.items()
            if n.get("state") == "approval"]


def routes(config: ConfigSet, job: str | None, happened: list[str]) -> list[tuple[str, str]]:
    """(event, channel) for each event of `happened` a rule or the job's notify: sends, once
    each, in the order of the rules. No job (a refused revision, which is no job's): the
    rules whose `jobs` has the glob `*` (the default)."""
    found = (config.jobs.get(job) or config.workflows.get(job)) if job else None
    own: tuple[Notify, ...] = found.notify if found else ()
    out: dict[tuple[str, str], None] = {}
    for rule in (*config.notifications.rules, *own):
        if "*" in rule.jobs if job is None else any(fnmatchcase(job, g) for g in rule.jobs):
            for event in happened:
                if event in rule.on:
                    out.update(dict.fromkeys((event, c) for c in rule.channels
                                             if c in config.notifications.channels))
    return list(out)


def message(record: RunRecord, event: str, public_url: str, node: str | None = None,
            question: str | None = None) -> dict[str, Any]:
    """The JSON a webhook receives (the other channels render `text` of it); an approval's
    names the node waiting and its question."""
    if node is not None:
        return {"event": event, "workflow": record.job, "run_id": record.run_id, "node": node,
                "question": question, "approve": f"runner approve {record.run_id} {node}",
                "revision": record.revision,
                "link": f"{public_url}/runs/{record.run_id}" if public_url else None}
    failed = {name: t.get("error") or t.get("status")
              for name, t in ((record.result or {}).get("targets") or {}).items()
              if t.get("status") not in ("success", "skipped")}
    link = f"{public_url}/runs/{record.run_id}" if public_url else None
    return {"event": event, "job": record.job, "run_id": record.run_id,
            "status": record.state.value if record.state else None, "error": record.error,
            "failed_targets": failed, "revision": record.revision, "link": link}


def refusal(notice: dict[str, Any], public_url: str) -> dict[str, Any]:
    """The JSON of a refused revision's notice (its entry: revision, author, reason, errors)."""
    return {"event": "refused", **{k: notice.get(k) for k in ("revision", "author", "subject",
                                                               "reason", "errors")},
            "link": f"{public_url}/" if public_url else None}


def text(m: dict[str, Any]) -> str:
    """The message as a few lines of plain text (Slack, email; the first line is an approval's
    or a refusal's email subject)."""
    if m["event"] == "refused":
        return "\n".join([f"runner: revision {str(m['revision'])[:12]} by {m['author']} "
                          f"refused: {m['reason']}", *(m.get("errors") or ()),
                          *([m["link"]] if m.get("link") else [])])
    if m["event"] == "approval":
        return "\n".join([f"runner: workflow {m['workflow']} waits for approval of node "
                          f"{m['node']} (run {m['run_id']})", f"question: {m['question']}",
                          f"an operator approves: {m['approve']} (or --reject), or in the "
                          "dashboard", *([m["link"]] if m.get("link") else [])])
    lines = [f"runner: job {m['job']} {m['event']} (run {m['run_id']}, {m['status']})"]
    if m.get("error"):
        lines.append(f"error: {m['error']}")
    lines += [f"target {name} failed: {why}" for name, why in m["failed_targets"].items()]
    lines.append(f"config revision: {(m.get('revision') or 'unknown')[:12]}")
    if m.get("link"):
        lines.append(m["link"])
    return "\n".join(lines)
