"""Checks across the whole configuration: the references objects make to each other and to files.

`refs` collects one object's references (cached with its file); `check_refs` resolves them over
every object and returns (path, message, at_key) like `semantic.check_object`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from runner.config.documents import Path
from runner.config.params import check, declared
from runner.config.schema import did_you_mean
from runner.config.semantic import (
    ACTIONS,
    Finding,
    TargetIndex,
    _d,
    _l,
    _s,
    path_error,
    repo_known_hosts,
    selector_error,
)

# A reference one object makes to others: (path, kind, value); kinds: queue, worker-queue,
# selector, file, job, limit, workflow, workflow-name (a workflow's own name, unique among jobs).
# Collected per file (cached with it), resolved over the whole set.
Ref = tuple[Path, str, str]


def refs(section: str, name: str, v: Any) -> list[Ref]:
    """The references of one object, from its well-shaped parts."""
    out: list[Ref] = []
    if not isinstance(v, dict):
        return out
    if section == "workers":
        out += [(("workers", name, "queues", i), "worker-queue", q)
                for i, q in enumerate(_l(v, "queues")) if isinstance(q, str)]
    elif section == "targets":
        known = repo_known_hosts(v.get("known_hosts"))
        if known is not None and path_error(known) is None:
            out.append((("targets", name, "known_hosts"), "file", known))
    elif section == "jobs":
        if isinstance(v.get("queue"), str):
            out.append((("jobs", name, "queue"), "queue", v["queue"]))
        out += [(("jobs", name, "targets", i), "selector", t)
                for i, t in enumerate(_l(v, "targets"))
                if isinstance(t, str) and selector_error(t) is None]
        for i, step in enumerate(_l(v, "steps")):
            for where, path in ((("script",), _s(step, "script")),
                                (("upload", "src"), _s(_d(step, "upload"), "src")),
                                (("http", "ca_file"), _s(_d(step, "http"), "ca_file"))):
                if path is not None and path_error(path) is None:
                    out.append((("jobs", name, "steps", i, *where), "file", path))
            out += _reaches(("jobs", name, "steps", i), step)
        if isinstance(v.get("params"), dict):  # its declaration, for the values given it
            out.append((("jobs", name, "params"), "param-decl", json.dumps(v["params"])))
    elif section == "limits":
        out += [(("limits", name, "targets", i), "limit-target", t)
                for i, t in enumerate(_l(v, "targets"))
                if isinstance(t, str) and selector_error(t) is None]
    elif section == "schedules" and isinstance(v.get("job"), str):
        out.append((("schedules", name, "job"), "job", v["job"]))
        out += _limit(("schedules", name), v) + _params(("schedules", name), v, v["job"])
    elif section == "schedules" and isinstance(v.get("workflow"), str):
        out.append((("schedules", name, "workflow"), "workflow", v["workflow"]))
    elif section == "workflows":
        out.append((("workflows", name), "workflow-name", name))
        for node, x in _d(v, "nodes").items():
            if isinstance(_s(x, "job"), str):
                out.append((("workflows", name, "nodes", node, "job"), "job", x["job"]))
                out += _limit(("workflows", name, "nodes", node), x)
                out += _params(("workflows", name, "nodes", node), x, x["job"])
    return out


def _reaches(at: Path, step: Any) -> list[Ref]:
    """What a step needs of its targets: a shell (every kind but http), or a base_url (an
    http step whose url is a path)."""
    kind = next((k for k in ACTIONS if isinstance(step, dict) and k in step), None)
    url = _s(_d(step, "http"), "url")
    if kind == "http":
        return [((*at, "http", "url"), "base-url", url)] if url and url[:1] == "/" else []
    return [(at, "shell", kind)] if kind else []


def _limit(owner: Path, v: Any) -> list[Ref]:
    limit = _s(v, "limit")
    return [] if limit is None or selector_error(limit) else [((*owner, "limit"), "limit", limit)]


def _params(owner: Path, v: Any, job: str) -> list[Ref]:
    """The values a schedule or node gives its job's params (also none: some may be
    required), as JSON: [job, values]."""
    return [((*owner, "params"), "params", json.dumps([job, _d(v, "params")]))]


def check_refs(found: Iterable[Ref], objects: Mapping[str, Mapping[str, Any]],
               names: Mapping[str, set[str]], file_error: Callable[[str], str | None]
               ) -> list[Finding]:
    """Resolve every reference against the whole configuration. `objects` holds the workers and
    targets (any shape), `names` every declared name; `file_error` checks a repository file."""
    queues, jobs = names.get("queues"), names.get("jobs", set())
    flows = names.get("workflows", set())
    workers = objects.get("workers", {})
    served = {q for w in workers.values() for q in _l(w, "queues") if isinstance(q, str)}
    index = TargetIndex(objects.get("targets", {}), names.get("targets", set()))
    selectors: dict[str, list[str]] = {}  # job -> its selectors, for schedule limits
    limits: list[Ref] = []
    scheduled: dict[Path, str] = {}  # schedule or workflow node -> its job
    verdicts: dict[tuple[str, str], str | None] = {}  # (kind, value) -> problem; values repeat
    out: list[Finding] = []
    given: list[Ref] = []  # values for a job's params, by a schedule or workflow node
    needs: list[Ref] = []  # what steps need of their targets
    decls: list[Ref] = []  # the jobs' params
    for ref in found:
        where, kind, value = ref
        if kind == "selector":
            selectors.setdefault(str(where[1]), []).append(value)
        elif kind == "job":
            scheduled[where[:-1]] = value
        elif kind == "limit":
            limits.append(ref)
            continue
        elif kind in ("params", "param-decl", "shell", "base-url"):
            (given if kind == "params" else decls if kind == "param-decl" else needs).append(ref)
            continue
        elif kind in ("workflow", "workflow-name"):
            problem = _workflow_verdict(kind, value, flows, jobs)
            if problem:
                out.append((where, _SUBJECT[kind](where, value) + problem, kind != "workflow"))
            continue
        key = (kind, value)
        if key not in verdicts:
            verdicts[key] = _verdict(kind, value, queues, served, bool(workers), index, jobs,
                                     file_error)
        problem = verdicts[key]
        if problem:
            out.append((where, _SUBJECT[kind](where, value) + problem, False))
    for where, _, limit in limits:
        job = scheduled.get(where[:-1], "")
        if job in selectors and not index.match(limit) & set(index.resolve(selectors[job])):
            out.append((where, f"limit {limit!r} of {_owner(where)} matches none of the "
                               f"targets of job {job!r}", False))
    out += _needs(needs, selectors, index, objects.get("targets", {}))
    return out + _given(given, {str(w[1]): json.loads(v) for w, _, v in decls}, jobs)


def _needs(needs: list[Ref], selectors: Mapping[str, list[str]], index: TargetIndex,
           targets: Mapping[str, Any]) -> list[Finding]:
    """A step that needs a shell on an http target, or a base_url on another target."""
    out: list[Finding] = []
    for where, kind, value in needs:
        job, step = str(where[1]), f"step {int(where[3]) + 1} of job {where[1]!r}"
        chosen = index.resolve(selectors.get(job, ()))
        http = [t for t in chosen if _d(targets, t).get("transport") == "http"]
        if kind == "shell" and http:
            out.append((where, f"{step} is a {value} step, and target {http[0]!r} (transport "
                        "http) has no shell: only http steps run on it; narrow the job's "
                        "targets or make the step an http step", False))
        other = [t for t in chosen if t not in http]
        if kind == "base-url" and other:
            out.append((where, f"{step}: url {value!r} is a path, and target {other[0]!r} has "
                        "no base_url to join it to (only transport http targets have one); "
                        "write a full URL like https://$TARGET_HOST/health", False))
    return out


def _given(given: list[Ref], decls: Mapping[str, Any], jobs: set[str]) -> list[Finding]:
    """The values schedules and nodes give their jobs' params, checked against `decls`."""
    out: list[Finding] = []
    for where, _, text in given:
        job, values = json.loads(text)
        params = [declared(n, x) for n, x in _d(decls, job).items()]
        if job not in jobs or None in params:
            continue  # no such job, or a wrong declaration: reported where they are
        _, problems = check([p for p in params if p], values)
        out += [((*where, name) if name else where, f"{_owner(where)} runs job {job!r}: {why}",
                 at_key) for name, why, at_key in problems]
    return out


def _owner(where: Path) -> str:
    """'schedule 's'' or 'node 'n' of workflow 'w'': what a reference at `where` belongs to."""
    if where[0] == "workflows" and len(where) > 3:
        return f"node {where[3]!r} of workflow {where[1]!r}"
    return f"{str(where[0])[:-1]} {where[1]!r}"


def _workflow_verdict(kind: str, value: str, flows: set[str], jobs: set[str]) -> str | None:
    if kind == "workflow" and value not in flows:
        return f"which is not defined{did_you_mean(value, flows)}"
    if kind == "workflow-name" and value in jobs:
        return (f"a job has the same name; jobs and workflows share names so that `runner run "
                f"{value}` means one thing: rename the workflow or the job")
    return None


def _verdict(kind: str, value: str, queues: set[str] | None, served: set[str], any_worker: bool,
             index: TargetIndex, jobs: set[str], file_error: Callable[[str], str | None]
             ) -> str | None:
    if kind in ("queue", "worker-queue"):
        return None if queues is None else _queue_verdict(kind, value, queues, served, any_worker)
    if kind in ("selector", "limit-target") and not index.match(value):
        return f"matches no target: {index.unknown(value)}"
    if kind == "job" and value not in jobs:
        return f"which is not defined{did_you_mean(value, jobs)}"
    if kind == "file":
        return file_error(value)
    return None


def _queue_verdict(kind: str, value: str, queues: set[str], served: set[str], any_worker: bool
                   ) -> str | None:
    """Why a queue reference is wrong, or None."""
    if kind == "worker-queue" and value not in queues:
        return f"which is not declared under 'queues'{did_you_mean(value, queues)}"
    if kind == "queue":
        if value not in queues:
            return f"which is not declared in queues.yaml{did_you_mean(value, queues)}"
        if value not in served and any_worker:
            return "which no worker serves; add it to a worker's queues in queues.yaml"
    return None


_SUBJECT: dict[str, Callable[[Path, str], str]] = {
    "worker-queue": lambda w, v: f"worker {w[1]!r} serves queue {v!r}, ",
    "queue": lambda w, v: f"job {w[1]!r} uses queue {v!r}, ",
    "selector": lambda w, v: f"target selector {v!r} of job {w[1]!r} ",
    "limit-target": lambda w, v: f"target selector {v!r} of limit {w[1]!r} ",
    "job": lambda w, v: f"{_owner(w)} runs job {v!r}, ",
    "workflow": lambda w, v: f"schedule {w[1]!r} runs workflow {v!r}, ",
    "workflow-name": lambda w, v: f"workflow {v!r}: ",
    "file": lambda w, v: (f"target {w[1]!r} known_hosts {v!r} " if w[0] == "targets" else
                          f"step {int(w[3]) + 1} of job {w[1]!r}: {v!r} "),
}
