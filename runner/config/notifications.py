"""The checks of notifications.yaml and of the jobs' `notify:` past its schema: one kind of
channel each, email with its server, rules naming channels that exist, globs that can match."""

from __future__ import annotations

import re
from typing import Any

from runner.config.documents import Path

FILE = "notifications.yaml"
KINDS = ("webhook", "slack", "email")
_GLOB = re.compile(r"^[a-z0-9._*?!\[\]-]+$")
Finding = tuple[Path, str, bool]


def glob_error(glob: str) -> str | None:
    """Why `glob` can match no job or workflow name, or None."""
    if not _GLOB.match(glob):
        return ("has characters no job name has; use lowercase letters, digits, '.', '_', "
                "'-' and the wildcards * ? [...]")
    if glob.count("[") != glob.count("]") or re.search(r"\[[^\]]*\[", glob):
        return "has an unbalanced '[' or ']'; a set is written [abc]"
    return None


def check(doc: dict[str, Any]) -> list[Finding]:
    """Findings of notifications.yaml alone (the parts with the right shape)."""
    out: list[Finding] = []
    channels = doc.get("channels")
    channels = channels if isinstance(channels, dict) else {}
    for name, c in channels.items():
        if not isinstance(c, dict):
            continue
        kinds = [k for k in KINDS if k in c]
        if len(kinds) != 1:
            out.append((("channels", name), f"channel {name!r} needs exactly one of webhook, "
                                            f"slack or email; it has {len(kinds)}", True))
        elif kinds == ["email"] and "smtp" not in c:
            out.append((("channels", name), f"channel {name!r} sends email and needs 'smtp' "
                                            "(a reference to smtp://user:pass@host:port)", True))
    rules = doc.get("rules")
    for i, rule in enumerate(rules if isinstance(rules, list) else ()):
        if isinstance(rule, dict):
            out += unknown(("rules", i), rule, set(channels))
            for j, glob in enumerate(rule.get("jobs") or ()):
                if isinstance(glob, str) and (why := glob_error(glob)):
                    out.append((("rules", i, "jobs", j), f"job glob {glob!r} {why}", False))
    return out


def unknown(base: Path, rule: dict[str, Any], names: set[str]) -> list[Finding]:
    """A finding for each channel `rule` names that notifications.yaml does not declare."""
    found = [((*base, "channels", j), "channel", c)
             for j, c in enumerate(rule.get("channels") or ()) if isinstance(c, str)]
    return cross(found, {"notifications": {"notifications": {"channels": dict.fromkeys(names)}}})


def refs(section: str, name: str, v: Any) -> list[tuple[Path, str, str]]:
    """The channels a job's or workflow's `notify:` names, as references (see `cross`)."""
    if section not in ("jobs", "workflows") or not isinstance(v, dict) or not isinstance(
            v.get("notify"), list):
        return []
    return [((section, name, "notify", i, "channels", j), "channel", c)
            for i, rule in enumerate(v["notify"]) if isinstance(rule, dict)
            for j, c in enumerate(rule.get("channels") or ()) if isinstance(c, str)]


def cross(found: list[tuple[Path, str, str]], objects: dict[str, dict[str, Any]]
          ) -> list[Finding]:
    """Findings of each channel reference naming a channel notifications.yaml lacks."""
    doc = objects.get("notifications", {}).get("notifications", {})
    channels = doc.get("channels") if isinstance(doc, dict) else None
    names = set(channels) if isinstance(channels, dict) else set()
    known = ", ".join(sorted(names)) or f"none: declare channels in {FILE}"
    return [(where, f"channel {c!r} is not declared in {FILE} (declared: {known})", False)
            for where, kind, c in found if kind == "channel" and c not in names]
