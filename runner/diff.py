"""What a change to the configuration does, object by object and field by field, in words.

Pure: takes the plain objects of two revisions (kind -> name -> value as written) and the clock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from runner.config import model
from runner.desired import next_fires, node_text

SECTIONS = (("queues", "queue"), ("workers", "worker"), ("targets", "target"),
            ("jobs", "job"), ("schedules", "schedule"), ("workflows", "workflow"),
            ("limits", "limit"))
Objects = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Change:
    """One object added, removed or changed between two revisions, field by field."""

    kind: str  # queue, worker, target, job, schedule, workflow
    name: str
    change: str  # added, removed, changed
    fields: tuple[tuple[str, Any, Any], ...]  # (field, before, after); absent = None
    fires: tuple[tuple[str, ...], tuple[str, ...]] | None = None  # schedules: before, after
    words: tuple[str, ...] = ()  # workflows: nodes and edges added, removed, changed

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "name": self.name, "change": self.change,
                               "fields": [{"field": f, "before": b, "after": a}
                                          for f, b, a in self.fields]}
        if self.fires is not None:
            out["next_before"], out["next_after"] = list(self.fires[0]), list(self.fires[1])
        if self.kind == "workflow":
            out["words"] = list(self.words)
        return out


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out or {prefix: {}}
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        out = {}
        for i, v in enumerate(value):
            out.update(_flatten(v, f"{prefix}[{i + 1}]"))
        return out
    return {prefix: value}


def _fires(name: str, raw: dict[str, Any] | None, now: datetime, count: int) -> tuple[str, ...]:
    if raw is None:
        return ()
    try:
        return tuple(t.isoformat() for t in next_fires(model.schedule(name, raw), now, count))
    except (ValueError, KeyError):
        return ()


def changes(base: Objects, head: Objects, now: datetime, count: int = 3) -> list[Change]:
    """The changes from `base` to `head`, with the schedules' next `count` firings before and
    after."""
    out: list[Change] = []
    for section, kind in SECTIONS:
        before, after = base.get(section, {}), head.get(section, {})
        for name in sorted(set(before) | set(after)):
            b, a = before.get(name), after.get(name)
            if b == a:
                continue
            fb, fa = _flatten(b or {}), _flatten(a or {})
            fields = tuple((f, fb.get(f), fa.get(f)) for f in sorted(set(fb) | set(fa))
                           if fb.get(f) != fa.get(f))
            change = "added" if b is None else "removed" if a is None else "changed"
            fires = None
            if section == "schedules":
                fires = (_fires(name, b, now, count), _fires(name, a, now, count))
            words = _graph(b, a) if section == "workflows" else ()
            out.append(Change(kind, name, change, fields, fires, words))
    return out


_NODE_FIELDS = ("job", "approval", "limit", "timeout", "when")


def _graph(base: dict[str, Any] | None, head: dict[str, Any] | None) -> tuple[str, ...]:
    """A workflow's change in words: nodes added, removed or changed, and the edges between
    nodes of both revisions added or removed ('edge test -> rollback (on_failure) removed')."""
    before, after = (base or {}).get("nodes", {}), (head or {}).get("nodes", {})
    out = [f"node {n} removed" for n in before if n not in after]
    for name, node in after.items():
        if name not in before:
            out.append(f"node {name} added ({node_text(node)})")
            continue
        old = before[name]
        changed = [f"{k} {_show(old.get(k))} -> {_show(node.get(k))}" for k in _NODE_FIELDS
                   if old.get(k) != node.get(k)]
        if changed:
            out.append(f"node {name} changed: {', '.join(changed)}")
        was, now = old.get("after", []), node.get("after", [])
        out += [f"edge {p} -> {name} ({node.get('when', 'on_success')}) added"
                for p in now if p not in was]
        out += [f"edge {p} -> {name} ({old.get('when', 'on_success')}) removed"
                for p in was if p not in now]
    return tuple(out)


def _show(value: Any) -> str:
    return "(unset)" if value is None else json.dumps(value) if not isinstance(value, str) \
        else repr(value)


def render(found: list[Change]) -> list[str]:
    """The changes as the lines `runner diff` prints."""
    if not found:
        return ["no changes to queues, workers, targets, jobs, schedules or workflows"]
    lines: list[str] = []
    for c in found:
        lines.append(f"{c.kind} {c.name!r} {c.change}")
        if c.kind == "workflow" and c.change != "removed":
            lines += [f"    {w}" for w in c.words]
            if c.change == "changed":
                lines += [f"    {f}: {_show(b)} -> {_show(a)}" for f, b, a in c.fields
                          if f == "description"]
        elif c.change == "changed":
            lines += [f"    {f}: {_show(b)} -> {_show(a)}" for f, b, a in c.fields]
        elif c.change == "added":
            lines += [f"    {f}: {_show(a)}" for f, _, a in c.fields]
        if c.fires and c.fires[0] != c.fires[1]:
            if c.fires[0]:
                lines.append(f"    next fires before: {', '.join(c.fires[0])}")
            if c.fires[1]:
                lines.append(f"    next fires after:  {', '.join(c.fires[1])}")
    return lines
