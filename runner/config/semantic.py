"""Checks beyond the schema.

`check_object` looks at one schema-valid object alone (cached with its file), and returns
(path, message, at_key) so the caller can locate the offending node; the checks across the whole
configuration are in `references`. Also here: the syntax of target selectors and repository
paths, and the index that resolves selectors, which both kinds of check use.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from functools import cache
from posixpath import normpath
from typing import Any

from runner.config.documents import Path
from runner.config.http import step_errors as http_errors
from runner.config.http import target_errors as http_target_errors
from runner.config.model import NAME_RE, is_secret_ref, seconds
from runner.config.params import declaration_errors
from runner.config.schema import did_you_mean
from runner.cron import cron_error as _cron_error
from runner.cron import hashed

Finding = tuple[Path, str, bool]
ACTIONS = ("command", "script", "upload", "download", "http")
_ENV_REF = re.compile(r"^env:[A-Za-z_][A-Za-z0-9_]*$")
_LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$")


@cache
def zone(name: str) -> zoneinfo.ZoneInfo | None:
    """The time zone `name`, or None when there is no such zone."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return None


cron_error = cache(_cron_error)  # a repository repeats a few expressions many times
MAX_JITTER = 3600  # seconds, for cron and at schedules (every: below its interval)


def selector_error(selector: str) -> str | None:
    """Syntax of one target selector: NAME, group:NAME, label:KEY=VALUE."""
    if selector.startswith("group:"):
        group = selector[6:]
        return None if NAME_RE.match(group) else f"{group!r} after 'group:' is not a valid name"
    if selector.startswith("label:"):
        key, eq, _ = selector[6:].partition("=")
        if not eq or not _LABEL_KEY.match(key):
            return "a label selector is written label:KEY=VALUE, e.g. label:role=web"
        return None
    if NAME_RE.match(selector):
        return None
    return ("is not a target selector; write a target name, group:GROUP or label:KEY=VALUE")


def path_error(path: str) -> str | None:
    """A repository path must be relative and, normalised, stay inside the repository and
    outside .git and the state directory (.runner)."""
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        return "is an absolute path; give a path relative to the repository root, like files/x.sh"
    if "\\" in path:
        return "uses '\\'; write repository paths with '/'"
    norm = normpath(path)
    if norm == ".." or norm.startswith("../"):
        return "leaves the repository ('..'); files must stay inside it"
    if where := forbidden_dir(norm):
        return f"points {where}; reference a file of the repository"
    if ".." in path.split("/"):
        return f"goes through '..'; write it as {norm!r}"
    return None


def forbidden_dir(norm: str) -> str | None:
    """Where a normalised repository path must never lead, or None: into any .git, or into
    the state directory .runner (tokens, keys, runs). Compared case-insensitively."""
    parts = norm.casefold().split("/")
    if ".git" in parts:
        return "into .git"
    if parts[0] == ".runner":
        return "into the state directory .runner"
    return None


def _remote_path_error(path: str) -> str | None:
    if path.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", path):
        return None
    return "must be an absolute path on the target, like /etc/app.conf or C:\\app\\app.conf"


def _d(v: Any, key: str) -> dict[str, Any]:
    """v[key] when it is a mapping, else {} — checks run on objects with schema errors too."""
    found = v.get(key) if isinstance(v, dict) else None
    return found if isinstance(found, dict) else {}


def _l(v: Any, key: str) -> list[Any]:
    found = v.get(key) if isinstance(v, dict) else None
    return found if isinstance(found, list) else []


def _s(v: Any, key: str) -> str | None:
    found = v.get(key) if isinstance(v, dict) else None
    return found if isinstance(found, str) else None


def _zero(v: Any, key: str) -> bool:
    """True when v[key] is a well-formed duration of zero."""
    try:
        return key in v and seconds(v[key]) == 0
    except (ValueError, TypeError):
        return False


def check_object(kind: str, name: str, v: Any) -> list[Finding]:
    """Findings of one object alone (no other object is looked at). Runs on objects with schema
    errors too, looking only at the parts that have the right shape."""
    check = _CHECKS.get(kind)
    return check(name, v) if check and isinstance(v, dict) else []


def _target(name: str, v: dict[str, Any]) -> list[Finding]:
    base: Path = ("targets", name)
    transport = v.get("transport", "ssh")
    out: list[Finding] = []
    if transport in ("ssh", "winrm") and "host" not in v:
        how = "transport ssh (the default)" if "transport" not in v else f"transport {transport}"
        out.append((base, f"target {name!r} uses {how} and needs 'host'", True))
    if transport == "winrm" and "user" not in v:
        out.append((base, f"target {name!r} uses transport winrm and needs 'user'", True))
    known = repo_known_hosts(v.get("known_hosts"))
    if known is not None and (why := path_error(known)):
        out.append(((*base, "known_hosts"), f"target {name!r} known_hosts {known!r} {why}", False))
    return out + http_target_errors(name, v)


def repo_known_hosts(value: Any) -> str | None:
    """A target's known_hosts when it names a file of the repository (a relative path), else
    None (absent, or a path on the worker: absolute or starting with ~)."""
    if not isinstance(value, str) or value.startswith(("/", "~")):
        return None
    return value


def _job(name: str, v: dict[str, Any]) -> list[Finding]:
    base: Path = ("jobs", name)
    out: list[Finding] = []
    for i, selector in enumerate(_l(v, "targets")):
        if isinstance(selector, str) and (problem := selector_error(selector)):
            out.append(((*base, "targets", i), f"target selector {selector!r} of job {name!r}: "
                                               f"{problem}", False))
    for key in ("timeout", "deadline"):
        if _zero(v, key):
            out.append(((*base, key), f"{key} of job {name!r} must be more than 0", False))
    for key, value in _d(v, "env").items():
        if is_secret_ref(value) and not (_ENV_REF.match(value) or value.startswith("file:/")):
            out.append(((*base, "env", key), f"env {key!r} of job {name!r} looks like a secret "
                        "reference but is malformed; write env:NAME or file:/absolute/path",
                        False))
    for i, step in enumerate(_l(v, "steps")):
        if isinstance(step, dict):
            out.extend(_step(name, i, step))
    for key, decl in _d(v, "params").items():
        out.extend(declaration_errors(name, key, decl))
    return out


def _limit(name: str, v: dict[str, Any]) -> list[Finding]:
    return [(("limits", name, "targets", i), f"target selector {selector!r} of limit {name!r}: "
                                             f"{problem}", False)
            for i, selector in enumerate(_l(v, "targets"))
            if isinstance(selector, str) and (problem := selector_error(selector))]


def _step(job: str, i: int, v: dict[str, Any]) -> list[Finding]:
    at: Path = ("jobs", job, "steps", i)
    what = f"step {i + 1} of job {job!r}"
    actions = [a for a in ACTIONS if a in v]
    if len(actions) != 1:
        found = f"has both {' and '.join(actions)}" if actions else "does nothing"
        return [(at, f"{what} {found}; a step has exactly one of command, script, upload, "
                     "download, http", False)]
    action = actions[0]
    out: list[Finding] = []
    if "args" in v and action != "script":
        out.append(((*at, "args"), f"{what}: 'args' only applies to a script step", True))
    if "shell" in v and action in ("upload", "download", "http"):
        out.append(((*at, "shell"), f"{what}: 'shell' only applies to command and script steps",
                    True))
    key, field = {"script": ("", "script"), "http": ("http", "ca_file")}.get(action,
                                                                             ("upload", "src"))
    repo_path = _s(_d(v, key) if key else v, field)
    if repo_path is not None:
        where = (*at, key, field) if key else (*at, field)
        problem = path_error(repo_path)
        if problem:
            out.append((where, f"{what}: {repo_path!r} {problem}", False))
    for key, field in (("upload", "dest"), ("download", "src")):
        remote = _s(_d(v, key), field)
        if remote is not None and (problem := _remote_path_error(remote)):
            out.append(((*at, key, field), f"{what}: {key} {field} {remote!r} {problem}", False))
    if _zero(v, "timeout"):
        out.append(((*at, "timeout"), f"{what}: timeout must be more than 0", False))
    return out + http_errors((*at, "http"), what, _d(v, "http"))


def _schedule(name: str, v: dict[str, Any]) -> list[Finding]:
    base: Path = ("schedules", name)
    out: list[Finding] = []
    runs = [k for k in ("job", "workflow") if k in v]
    if len(runs) != 1:
        found = "has both job and workflow" if runs else "says not what to run"
        out.append((base, f"schedule {name!r} {found}; a schedule has exactly one of job, "
                          "workflow", True))
    if "limit" in v and runs == ["workflow"]:
        out.append(((*base, "limit"), f"schedule {name!r}: 'limit' applies to a job; a "
                    "workflow narrows targets with its nodes' limit", True))
    kinds = [k for k in ("cron", "every", "at") if k in v]
    if len(kinds) != 1:
        found = f"has both {' and '.join(kinds)}" if kinds else "says not when to fire"
        out.append((base, f"schedule {name!r} {found}; a schedule has exactly one of cron, "
                          "every, at", True))
    if _s(v, "cron") is not None:
        problem = _hashed_cron_error(v["cron"], name)
        if problem:
            out.append(((*base, "cron"), f"cron of schedule {name!r}: {problem}", False))
    out.extend(_jitter(name, v))
    for key in ("every", "deadline"):
        if _zero(v, key):
            out.append(((*base, key), f"{key} of schedule {name!r} must be more than 0", False))
    if _s(v, "at") is not None:
        problem = _at_error(v["at"])
        if problem:
            out.append(((*base, "at"), f"at of schedule {name!r}: {problem}", False))
    if _s(v, "timezone") is not None and zone(v["timezone"]) is None:
        tz = v["timezone"]
        hint = did_you_mean(tz, zoneinfo.available_timezones())
        out.append(((*base, "timezone"), f"timezone of schedule {name!r}: {tz!r} is not an IANA "
                    f"time zone name like Europe/Berlin or UTC{hint}", False))
    if _s(v, "limit") is not None:
        problem = selector_error(v["limit"])
        if problem:
            out.append(((*base, "limit"), f"limit of schedule {name!r}: {v['limit']!r} {problem}",
                        False))
    return out


def _hashed_cron_error(expr: str, name: str) -> str | None:
    try:
        concrete = hashed(expr, name)
    except ValueError as exc:
        return str(exc)
    problem = cron_error(concrete)
    if problem and concrete != expr:
        return (f"{problem}; H resolves {expr!r} to that for this schedule's name: give H a "
                "range in which the other fields match")
    return problem


def _seconds(v: dict[str, Any], key: str) -> int | None:
    try:
        return seconds(v[key]) if key in v else None
    except (ValueError, TypeError):
        return None


def _jitter(name: str, v: dict[str, Any]) -> list[Finding]:
    jitter, every = _seconds(v, "jitter"), _seconds(v, "every")
    if jitter is None:
        return []
    text = v["jitter"]
    if every is not None and jitter >= every > 0:
        return [(("schedules", name, "jitter"), f"jitter {text!r} of schedule {name!r} must be "
                 f"smaller than its interval (every: {v['every']!r}); lower it, e.g. to "
                 f"{every // 2}s", False)]
    if every is None and jitter > MAX_JITTER:
        return [(("schedules", name, "jitter"), f"jitter {text!r} of schedule {name!r} is more "
                 "than 1h, the most a cron or at schedule may be delayed; lower it to 1h or "
                 "less", False)]
    return []


def _at_error(text: str) -> str | None:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return (f"{text!r} is not an ISO 8601 timestamp; write it like "
                "2026-12-01T10:00:00+01:00")
    if when.tzinfo is None:
        return f"{text!r} has no UTC offset; add one, like 2026-12-01T10:00:00+01:00 or ...Z"
    return None


_CHECKS: dict[str, Callable[[str, Any], list[Finding]]] = {
    "targets": _target, "jobs": _job, "schedules": _schedule, "limits": _limit}


class TargetIndex:
    """Resolves selectors against the targets of one configuration."""

    def __init__(self, targets: Mapping[str, Mapping[str, Any]],
                 names: Iterable[str] = ()) -> None:
        self.names = sorted(set(targets) | set(names))
        self.groups: dict[str, set[str]] = {}
        self.labels: dict[str, set[str]] = {}
        for name, t in targets.items():
            for g in _l(t, "groups"):
                self.groups.setdefault(str(g), set()).add(name)
            for k, x in _d(t, "labels").items():
                value = str(x).lower() if isinstance(x, bool) else str(x)
                self.labels.setdefault(f"{k}={value}", set()).add(name)

    def match(self, selector: str) -> set[str]:
        if selector.startswith("group:"):
            return self.groups.get(selector[6:], set())
        if selector.startswith("label:"):
            return self.labels.get(selector[6:], set())
        return {selector} if selector in self.names else set()

    def resolve(self, selectors: Iterable[str]) -> list[str]:
        found: set[str] = set()
        for s in selectors:
            found |= self.match(s)
        return sorted(found)

    def unknown(self, selector: str) -> str:
        """Why `selector` matches nothing, with a suggestion."""
        if selector.startswith("group:"):
            return (f"no target is in group {selector[6:]!r}"
                    + did_you_mean(selector[6:], self.groups))
        if selector.startswith("label:"):
            return (f"no target has label {selector[6:]!r}"
                    + did_you_mean(selector[6:], self.labels))
        return f"there is no target {selector!r}" + did_you_mean(selector, self.names)
