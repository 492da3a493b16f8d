"""Load a configuration: files -> per-file results (cached by blob id) -> cross checks -> ConfigSet.

Cost grows with the change: `check_file` depends only on a file's bytes, so its result is cached
under the file's git blob id; only the cross-object checks and the model build see every object.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import marshal
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

from runner.config import documents, model, notifications, references, schema, semantic, workflows
from runner.config.limits import limit
from runner.errors import ConfigInvalid, Problem

CONFIG_DIRS = {"targets.d": "targets", "jobs.d": "jobs", "schedules.d": "schedules",
               "workflows.d": "workflows"}
QUEUES_FILE = "queues.yaml"
TOP_FILES = (QUEUES_FILE, notifications.FILE)  # the configuration files at the top level


def kind_for(path: str) -> str | None:
    """The kind of a repo-relative path, or None when it is not a configuration file."""
    if path == QUEUES_FILE:
        return "queues"
    if path == notifications.FILE:
        return "notifications"
    top, _, rest = path.partition("/")
    if top in CONFIG_DIRS and rest.endswith((".yaml", ".yml")) and "/" not in rest:
        return CONFIG_DIRS[top]
    return None


def blob_id(data: bytes) -> str:
    """Git's blob id of `data`, so worktree files and committed files share cache entries."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class SourceFile:
    path: str
    blob: str
    read: Callable[[], bytes]


class Snapshot(Protocol):
    """One revision of a configuration repository (a directory or a git commit)."""

    @property
    def revision(self) -> str: ...

    @property
    def problems(self) -> tuple[Problem, ...]:
        """Files refused while listing (e.g. symlinks leading out); valid after files()."""

    def files(self) -> list[SourceFile]: ...

    def file_error(self, path: str) -> str | None:
        """None when `path` is a regular file inside the repository, else why not."""


@dataclass(frozen=True)
class FileResult:
    """What checking one file found; depends only on its bytes, so it is cached by blob id."""

    kind: str
    declared: tuple[str, ...]  # "section/name"s
    # "section/name" -> plain value, or those marshalled to bytes by the disk cache so they
    # are decoded only when needed (see `decode`)
    objects: dict[str, Any] | bytes
    problems: tuple[Problem, ...]
    bad: tuple[str, ...]  # "section/name"s with errors
    refs: tuple[references.Ref, ...]  # to other objects and to files

    def files(self) -> set[str]:
        """The repository files this file's objects reference (scripts, uploads)."""
        return {value for _where, kind, value in self.refs if kind == "file"}


Cache = MutableMapping[str, FileResult]


def check_file(kind: str, path: str, data: bytes) -> FileResult:
    """Parse, schema-check and object-check one file. Depends only on (kind, path, data)."""
    parsed = documents.parse(path, data)
    problems = list(parsed.problems)
    doc = parsed.value
    if doc is None and not problems and kind != "notifications":  # empty: no notifications
        keys = "'queues' and 'workers'" if kind == "queues" else repr(kind)
        problems.append(Problem(path, 1, 1, f"file is empty; a {kind} file is a mapping with "
                                            f"the top-level key {keys}"))
    if doc is None:
        return FileResult(kind, (), {}, tuple(problems), (), ())
    bad: set[tuple[str | int, ...]] = set()

    def add(findings: Iterable[tuple[documents.Path, str, bool]]) -> None:
        for where, message, at_key in schema.prune(list(findings)):
            bad.add(where[:2])
            line, column = parsed.locate(where, at_key)
            if (line, column) in parsed.refused:
                continue  # already reported by the parser
            if "missing required key" in message and parsed.locate(where) in parsed.incomplete:
                continue  # the refused merge is the one mistake
            problems.append(Problem(path, line, column, message))

    findings = schema.check(kind, doc, parsed.written)
    if not isinstance(doc, dict):
        add(findings)
        return FileResult(kind, (), {}, tuple(problems), (), ())
    objects: dict[str, Any] = {}
    refs: list[references.Ref] = []
    if kind == "notifications":  # one settings object, like reports
        objects["notifications/notifications"] = doc
        findings += notifications.check(doc)
    named = {"queues": ("queues", "workers", "limits"), "notifications": ()}
    for section in named.get(kind, (kind,)):
        value = doc.get(section)
        if isinstance(value, dict):
            for name, obj in value.items():
                objects[f"{section}/{name}"] = obj
                findings += (workflows.check(name, obj) if section == "workflows"
                             else semantic.check_object(section, name, obj))
                refs.extend(references.refs(section, name, obj))
                refs.extend(notifications.refs(section, name, obj))
    if kind == "queues" and isinstance(doc.get("reports"), dict):
        objects["reports/reports"] = doc["reports"]  # one settings object, not a named kind
    add(findings)
    names_bad = tuple(sorted(f"{w[0]}/{w[1]}" for w in bad if len(w) == 2))
    return FileResult(kind, tuple(objects), objects, tuple(problems), names_bad, tuple(refs))


@dataclass(frozen=True)
class Loaded:
    config: model.ConfigSet | None
    problems: tuple[Problem, ...]
    objects: dict[str, dict[str, Any]]  # kind -> name -> plain value, of the error-free objects
    names: dict[str, set[str]]  # kind -> every declared name


def load(snapshot: Snapshot, cache: Cache | None = None, model_too: bool = True,
         made: Made | None = None) -> Loaded:
    """Every problem of the snapshot, and the ConfigSet when there are none (and `model_too`).
    A long-lived caller passes the same `cache` and `made` each time: a file whose blob did
    not change is then neither decoded nor built again (see `build`)."""
    cache = {} if cache is None else cache
    files = snapshot.files()
    problems: list[Problem] = list(snapshot.problems)
    objects: dict[str, dict[str, Any]] = {}  # every object, for the checks
    good: dict[str, dict[str, Any]] = {}  # objects without errors, for the model
    names: dict[str, set[str]] = {}
    origin: dict[tuple[str, str], str] = {}
    refs: list[references.Ref] = []
    by_path = {f.path: f for f in files}
    if QUEUES_FILE in by_path:
        names["queues"] = set()  # declared queues are known; check the jobs' queues
    else:
        problems.append(Problem(QUEUES_FILE, 1, 1, "queues.yaml is missing; it declares the "
                                                   "queues and the workers that serve them"))
    for f in files:
        kind = kind_for(f.path)
        if kind is None:
            continue
        key = f"{kind}:{f.path}:{f.blob}"
        result = cache.get(key)
        if result is None:
            result = cache[key] = check_file(kind, f.path, f.read())
        declared, stored, bad, file_refs = result.declared, result.objects, result.bad, result.refs
        problems.extend(result.problems)
        if any(tuple(q.split("/", 1)) in origin for q in declared):  # duplicates: first wins
            refs.extend(r for r in file_refs if (str(r[0][0]), str(r[0][1])) not in origin)
        else:
            refs.extend(file_refs)
        found = decode(stored) if model_too or kind in _ALWAYS_DECODED else {}
        if isinstance(stored, bytes) and found:  # decoded once: the same objects next time
            cache[key] = dataclasses.replace(result, objects=found)
        for qualified in declared:
            section, name = qualified.split("/", 1)
            first = origin.setdefault((section, name), f.path)
            if first != f.path:
                problems.append(_duplicate(f, section, name, first, by_path[first]))
                continue
            names.setdefault(section, set()).add(name)
            value = found.get(qualified)
            if isinstance(value, dict):
                objects.setdefault(section, {})[name] = value
                if qualified not in bad:
                    good.setdefault(section, {})[name] = value
    located = _Locator(by_path)
    file_error = functools.cache(snapshot.file_error)  # jobs share a few scripts
    for where, message, at_key in [*references.check_refs(refs, objects, names, file_error),
                                   *notifications.cross(refs, objects)]:
        section, name = str(where[0]), str(where[1])
        problems.append(located(origin[(section, name)], where, at_key, message))
    if problems:
        return Loaded(None, tuple(sorted(set(problems))), good, names)
    return Loaded(build(snapshot.revision, good, made) if model_too else None, (), good,
                  names)


# workers, targets and channels are read by the reference checks
_ALWAYS_DECODED = ("queues", "targets", "notifications")


def decode(stored: dict[str, Any] | bytes) -> dict[str, Any]:
    """A FileResult's objects ('section/name' -> value), marshalled or not."""
    if isinstance(stored, bytes):
        decoded: dict[str, Any] = marshal.loads(stored)
        return decoded
    return stored


def load_or_raise(snapshot: Snapshot, cache: Cache | None = None) -> model.ConfigSet:
    loaded = load(snapshot, cache)
    if loaded.config is None:
        raise ConfigInvalid(list(loaded.problems))
    return loaded.config


Made = dict[str, dict[str, tuple[Any, Any]]]  # section -> name -> (its value, the model)


def build(revision: str, objects: dict[str, dict[str, Any]],
          made: Made | None = None) -> model.ConfigSet:
    """The ConfigSet of error-free `objects`. With `made` (kept by the caller between builds),
    an object whose value is the very same as last time keeps its model object, so a new
    revision costs the objects it changed and unchanged ones compare by identity."""
    then = {} if made is None else made
    now: Made = {}

    def each(section: str, make: Callable[[str, Any], Any]) -> dict[str, Any]:
        values, before = objects.get(section, {}), then.get(section, {})
        built, kept = {}, now.setdefault(section, {})
        for name in order.get(section, ()):
            value = values[name]
            hit = before.get(name)
            built[name] = model_of = hit[1] if hit and hit[0] is value else make(name, value)
            kept[name] = (value, model_of)
        return built

    order = {section: sorted(names) for section, names in objects.items()}  # one order, twice
    config = model.ConfigSet(
        revision=revision, queues=each("queues", model.queue),
        workers=each("workers", model.worker), targets=each("targets", model.target),
        jobs=each("jobs", model.job), schedules=each("schedules", model.schedule),
        raw={k: {n: v[n] for n in order[k]} for k, v in objects.items()},
        reports=model.reports(objects.get("reports", {}).get("reports", {})),
        workflows=each("workflows", model.workflow),
        limits=each("limits", limit),
        notifications=model.notifications(objects.get("notifications", {}).get(
            "notifications", {})))
    if made is not None:  # what the next build reuses: removed objects are forgotten
        made.clear()
        made.update(now)
    return config


def _duplicate(f: SourceFile, section: str, name: str, first: str, first_file: SourceFile
               ) -> Problem:
    line, column = documents.parse(f.path, f.read()).locate((section, name), key=True)
    first_line, _ = documents.parse(first, first_file.read()).locate((section, name), key=True)
    what = {"queues": "queue", "workers": "worker"}.get(section, section[:-1])
    return Problem(f.path, line, column, f"{what} {name!r} is already defined in "
                                         f"{first}:{first_line}; names are unique across files")


class _Locator:
    """Positions for cross-object findings: re-parses only the files that have one."""

    def __init__(self, files: dict[str, SourceFile]) -> None:
        self.files = files
        self.parsed: dict[str, documents.Parsed] = {}

    def __call__(self, path: str, where: documents.Path, at_key: bool, message: str) -> Problem:
        parsed = self.parsed.get(path)
        if parsed is None:
            parsed = self.parsed[path] = documents.parse(path, self.files[path].read())
        line, column = parsed.locate(where, at_key)
        return Problem(path, line, column, message)
