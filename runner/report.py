"""What one finished run looks like on the report branch: its directory, files and commit message.

Pure: a run record (runner/store) in, a Report out; no git, no store, no clock. publish.py writes
Reports with git plumbing.

    runs/YYYY/MM/DD/JOB/RUN_ID/        the run's UTC creation date, then job, then run id
        result.json                    the run record (the `runner run --format json` object
                                       under "result", plus trigger, revision and timings)
        TARGET/stdout  TARGET/stderr   per target, as kept (tail) and masked by the worker
        TARGET/downloads/NAME          downloaded files (src with "/" as "_")
    latest/JOB.json                    the newest run of JOB: id, state, times, path

The commit message: `JOB STATE on N targets (run RUN_ID)`, a per-target summary, then the
trailers Job, Run-Id, Status, Config-Revision, Trigger, Started, Finished; a child run of a
workflow adds Workflow-Run and Workflow-Node. A workflow run (issue 20; its `job` is the
workflow's name, its `workflow` the node states) has `workflow NAME STATE, N nodes (run
RUN_ID)`, a line per node, and Workflow instead of Job.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

SUMMARY_LINES = 20  # targets named in the message; result.json has them all
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_RUN_ID = re.compile(r"^([0-9a-f]{12})-[0-9a-f]{8}$")


@dataclass(frozen=True)
class Report:
    """A run's report: the files of its directory on the report branch and its commit message."""

    run_id: str
    job: str
    path: str                 # the run directory, "runs/YYYY/MM/DD/JOB/RUN_ID"
    files: dict[str, bytes]   # path relative to `path` -> content
    message: str
    latest: bytes             # the content of latest/JOB.json
    finished: float


def safe(name: str) -> str:
    """A name usable as one path component: [A-Za-z0-9._-] only, never '.' or '..'."""
    cleaned = _UNSAFE.sub("_", name) or "_"
    return f"_{cleaned}" if cleaned in (".", "..") else cleaned


def created_of(run_id: str) -> float | None:
    """The creation time a run id encodes (milliseconds in hex), or None."""
    match = _RUN_ID.match(run_id)
    return int(match[1], 16) / 1000 if match else None


def day(when: float) -> str:
    """The UTC date of `when` as the report branch's YYYY/MM/DD folders."""
    return datetime.fromtimestamp(when, UTC).strftime("%Y/%m/%d")


def run_dir(record: Mapping[str, Any]) -> str:
    """The folder of a run on the report branch: runs/YYYY/MM/DD/JOB/RUN_ID."""
    run_id = str(record["run_id"])
    when = record.get("created") or created_of(run_id) or record.get("finished") or 0
    return f"runs/{day(float(when))}/{safe(str(record.get('job') or 'unknown'))}/{safe(run_id)}"


def _iso(when: object) -> str | None:
    if not isinstance(when, int | float) or isinstance(when, bool):
        return None
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _one_line(text: object, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _node_line(name: str, node: Mapping[str, Any]) -> str:
    said = [f"{name}: {node.get('state', 'pending')}"]
    if node.get("run_id"):
        said.append(f"run {node['run_id']}")
    if node.get("decision"):
        said.append(f"{node['decision']} by {node.get('by') or 'runner'}")
    if node.get("comment"):
        said.append(f"({_one_line(node['comment'], 200)})")
    return " ".join(said)


def _summary(record: Mapping[str, Any]) -> tuple[str, list[str]]:
    """The subject and the per-target (or, of a workflow run, per-node) lines."""
    job, run_id, state = record.get("job", "unknown"), record["run_id"], record.get("state")
    flow = record.get("workflow")
    if isinstance(flow, Mapping):
        nodes: dict[str, Any] = flow.get("nodes") or {}
        plural = "" if len(nodes) == 1 else "s"
        return (f"workflow {job} {state}, {len(nodes)} node{plural} (run {run_id})",
                [_node_line(n, v or {}) for n, v in nodes.items()])
    targets: dict[str, Any] = (record.get("result") or {}).get("targets") or {}
    count = len(targets) or len(record.get("targets") or ())
    lines: list[str] = []
    for name, t in list(targets.items())[:SUMMARY_LINES]:
        took = f" in {t['duration']}s" if t.get("duration") is not None else ""
        rc = f" rc {t['rc']}" if t.get("rc") is not None else ""
        why = f": {_one_line(t['error'])}" if t.get("error") else ""
        lines.append(f"{name}: {t.get('status')}{rc}{took}{why}")
    if len(targets) > SUMMARY_LINES:
        lines.append(f"... and {len(targets) - SUMMARY_LINES} more targets (result.json)")
    if not targets:
        lines.append(_one_line(record.get("error") or "no target ran", 1000))
    return f"{job} {state} on {count} target{'' if count == 1 else 's'} (run {run_id})", lines


def message(record: Mapping[str, Any]) -> str:
    """The commit message of a run's report: its outcome, then a line per target (per node of
    a workflow run), then the trailers."""
    job, run_id, state = record.get("job", "unknown"), record["run_id"], record.get("state")
    subject, lines = _summary(record)
    kind = "Workflow" if isinstance(record.get("workflow"), Mapping) else "Job"
    trailers = {
        kind: job, "Run-Id": run_id, "Status": state,
        "Config-Revision": record.get("revision") or "unknown",
        "Trigger": record.get("trigger") or "unknown",
        "Started": _iso(record.get("started")) or _iso(record.get("created")),
        "Finished": _iso(record.get("finished")),
        "Workflow-Run": record.get("parent"), "Workflow-Node": record.get("node")}
    lines = [subject, "", *lines, ""]
    lines += [f"{k}: {_one_line(v, 1000)}" for k, v in trailers.items() if v is not None]
    return "\n".join(lines) + "\n"


def render(record: Mapping[str, Any], downloads: Mapping[str, bytes] | None = None) -> Report:
    """The report of one finished run. `downloads`: sha256 -> bytes of the files it fetched
    (the record names them by sha256); a missing one is left out."""
    downloads = downloads or {}
    files: dict[str, bytes] = {
        "result.json": json.dumps(record, indent=1, sort_keys=True,
                                  ensure_ascii=False).encode() + b"\n"}
    targets: dict[str, Any] = (record.get("result") or {}).get("targets") or {}
    for name, t in targets.items():
        d = safe(name)
        files[f"{d}/stdout"] = str(t.get("stdout") or "").encode()
        files[f"{d}/stderr"] = str(t.get("stderr") or "").encode()
        for got in t.get("downloads") or ():
            data = downloads.get(str(got.get("sha256")))
            if data is not None:
                files[f"{d}/downloads/{safe(str(got['src']).lstrip('/'))}"] = data
    path = run_dir(record)
    latest = {k: record.get(k) for k in ("run_id", "job", "state", "trigger", "revision",
                                          "created", "started", "finished", "error")}
    latest["path"] = path
    latest["targets"] = {n: t.get("status") for n, t in targets.items()}
    return Report(str(record["run_id"]), str(record.get("job") or "unknown"), path, files,
                  message(record), json.dumps(latest, indent=1, sort_keys=True).encode() + b"\n",
                  float(record.get("finished") or record.get("created") or 0))


def expired(days: Iterable[str], today: date, keep_days: int) -> list[str]:
    """The day directories ("YYYY/MM/DD") older than `keep_days` days before `today`."""
    cutoff = (today - timedelta(days=keep_days)).strftime("%Y/%m/%d")
    return sorted(d for d in days if d < cutoff)
