"""JSON Schema validation of one document, with errors rewritten into plain, located words.

A compiled validator (jsonschema-rs) answers "is this document valid?" for the common case; only an
invalid document goes through python-jsonschema, whose errors carry the keyword, the offending
instance and the subschema, which we turn into messages that say what was found, what is allowed,
and "did you mean" for near-miss keys. Secret fields never echo their value.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable
from functools import cache
from importlib import resources
from typing import Any

from runner.config.documents import Path, kind_of

KINDS = ("queues", "targets", "jobs", "schedules", "workflows", "notifications")

# (path, message, point at the key instead of the value)
SchemaError = tuple[Path, str, bool]


@cache
def schema_text(kind: str) -> str:
    """The JSON Schema of file kind `kind`, as shipped in runner/schemas/."""
    return (resources.files("runner") / "schemas" / f"{kind}.schema.json").read_text("utf-8")


@cache
def schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of file kind `kind`, parsed."""
    loaded: dict[str, Any] = json.loads(schema_text(kind))
    return loaded


@cache
def _fast(kind: str) -> Callable[[object], bool]:
    import jsonschema_rs

    validator = jsonschema_rs.Draft202012Validator(schema(kind))
    return validator.is_valid


@cache
def _slow(kind: str) -> Any:
    import jsonschema

    strict = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _pattern})
    return strict(schema(kind))


def _pattern(validator: Any, pattern: str, instance: object, _schema: object) -> Any:
    """JSON Schema's `pattern` as ECMA-262 reads it (and jsonschema-rs does): `$` is the end
    of the text. Python's `$` also matches before a final newline, which let a name like
    'web-1\\n' through the checks of the slow path."""
    from jsonschema.exceptions import ValidationError

    if isinstance(instance, str) and not re.search(_ecma(pattern), instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@cache
def _ecma(pattern: str) -> str:
    """`pattern` with each `$` that is an anchor (not escaped, not in a class) as `\\Z`."""
    out, escaped, in_class = [], False, False
    for c in pattern:
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == "[" and not in_class:
            in_class = True
        elif c == "]" and in_class:
            in_class = False
        elif c == "$" and not in_class:
            c = "\\Z"
        out.append(c)
    return "".join(out)


def check(kind: str, document: object,
          written: Callable[[Path], str | None] = lambda path: None) -> list[SchemaError]:
    """Every schema error of `document`, as (path, message, at_key). `written` gives a scalar's
    text as the user wrote it (YAML reads `no` as false and `0644` as 420)."""
    if _fast(kind)(document):
        return []
    errors: list[SchemaError] = []
    for error in _slow(kind).iter_errors(document):
        errors.extend(_explain(kind, error, written))
    return errors


_MISSING = re.compile(r"(?:missing required key|needs|needs the top-level key) '([^']+)'$")


def prune(errors: list[SchemaError]) -> list[SchemaError]:
    """Drop 'missing required key K' / 'needs K' where an unknown key of the same object is a
    near miss of K: one mistake, one message."""
    unknown: dict[Path, list[str]] = {}
    for where, message, _ in errors:
        if message.startswith("unknown ") and where:
            unknown.setdefault(where[:-1], []).append(str(where[-1]))

    def near_miss(where: Path, message: str) -> bool:
        missing = _MISSING.search(message)
        return bool(missing and difflib.get_close_matches(missing[1], unknown.get(where, []),
                                                          1, 0.6))

    return [e for e in errors if not near_miss(e[0], e[1])]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A '; did you mean ...?' suffix naming the closest of `choices`, or ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _show_value(value: object, written: str | None = None) -> str:
    """'a string 'x'', 'null', 'a boolean false (written no)'."""
    if value is None:
        return "null" if written in (None, "", "null", "~") else f"null (written {written})"
    if isinstance(value, dict | list):
        return kind_of(value)
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    shown = f"{kind_of(value)} {text if len(text) <= 60 else text[:57] + '...'}"
    if written is not None and not isinstance(value, str) and written != text:
        return f"{written[:40]!r}, which YAML reads as {shown}"
    return shown


def _where(kind: str, path: Path) -> str:
    """'job \"x\"' / 'step 2 of job \"x\"' / 'the file' — the object a message is about."""
    if not path:
        return "this file"
    if len(path) == 1:
        return repr(path[0])
    if kind == "queues" and path[0] == "reports":  # settings, not named objects
        return f"{path[1]!r} of 'reports'"
    what = f"{kind[:-1]} {path[1]!r}"
    if kind == "queues":
        what = f"{_SINGULAR.get(str(path[0]), 'worker')} {path[1]!r}"
    if len(path) >= 4 and path[2] == "steps" and isinstance(path[3], int):
        return f"step {path[3] + 1} of {what}"
    if len(path) >= 4 and path[2] == "nodes":
        return f"node {path[3]!r} of {what}"
    return what


def _subject(kind: str, path: Path) -> str:
    """What a value message is about: "job 'x'", "step 2 of job 'x'", "'timeout' of job 'x'"."""
    where = _where(kind, path)
    if len(path) <= 2 or (len(path) == 4 and path[2] in ("steps", "nodes")):
        return where
    last, named = path[-1], [p for p in path if isinstance(p, str)]
    if isinstance(last, int):
        if path[-2] == "targets" and kind == "jobs":
            return f"target selector {last + 1} of {where}"
        return f"item {last + 1} of {named[-1]!r} of {where}"
    if len(path) == 5 and path[2] == "nodes":
        return f"{last!r} of {where}"
    if len(path) == 4 and path[2] in ("labels", "env"):
        return f"{'label' if path[2] == 'labels' else 'env'} {last!r} of {where}"
    if len(named) >= 4 and named[-2] not in ("steps", kind):  # retries.backoff, upload.src
        return f"{named[-2]} {last!r} of {where}"
    return f"{last!r} of {where}"


def _names_a_key(error: Any) -> bool:
    """True when the error is about a mapping key (propertyNames), not a value."""
    trail = list(error.schema_path)
    if "propertyNames" not in trail:
        return False
    tail = trail[len(trail) - trail[::-1].index("propertyNames"):]
    return all(step in ("$ref", error.validator) for step in tail)


def _allowed(subschema: dict[str, Any]) -> str:
    return ", ".join(sorted(subschema.get("properties", {})))


def _explain(kind: str, error: Any, written: Callable[[Path], str | None]) -> list[SchemaError]:
    path: Path = tuple(error.absolute_path)
    keyword, sub, value = error.validator, error.schema, error.instance
    def _show(v: object) -> str:
        return _show_value(v, written(path))

    xkind = sub.get("x-kind") if isinstance(sub, dict) else None
    where, subject = _where(kind, path), _subject(kind, path)
    if keyword == "additionalProperties" and isinstance(value, dict):
        known = sub.get("properties", {})
        out: list[SchemaError] = []
        for key in value:
            if key in known:
                continue
            if len(path) == 0:
                msg = (f"unknown top-level key {key!r}; a {kind} file has "
                       f"{' and '.join(repr(k) for k in known)}{did_you_mean(key, known)}")
            else:
                msg = (f"unknown key {key!r} in {subject}{did_you_mean(key, known)} "
                       f"(allowed: {_allowed(sub)})")
            out.append(((*path, key), msg, True))
        return out
    if keyword == "required":
        missing = [k for k in error.validator_value if k not in value]
        if not path:
            return [((), f"a {kind} file needs the top-level key {missing[0]!r}", False)]
        return [(path, f"{where} is missing required key {k!r}", True) for k in missing]
    if _names_a_key(error):
        owner = f" of {where}" if len(path) > 1 else ""
        noun = f"{_SINGULAR.get(str(path[0]), 'the')} name" if len(path) == 1 else "name"
        return [((*path, value), _name_message(sub, value, owner, noun), True)]
    if xkind == "secret":
        return [(path, f"{subject} must be a secret reference, env:NAME or "
                       "file:/absolute/path; a plaintext secret is not allowed here "
                       "(the value is not shown)", False)]
    if keyword == "type" and not path:
        return [((), f"a {kind} file must be a mapping with the top-level key {kind!r}; "
                     f"found {_show(value)}", False)]
    if xkind == "duration":
        return [(path, f"{subject} must be a duration like 30s, 5m, 1h, 1h30m "
                       f"or a whole number of seconds, at most 10 years; found {_show(value)}",
                 False)]
    if xkind in ("name", "label-key", "env-name", "param-name") or keyword == "pattern":
        return [(path, f"{subject}: " + _name_message(sub, value, ""), False)]
    if keyword == "type":
        expected = error.validator_value
        expected = expected if isinstance(expected, list) else [expected]
        hint = " (quote it to make it a string)" if "string" in expected and isinstance(
            value, bool | int | float) else ""
        return [(path, f"{subject} must be {' or '.join(_TYPES[t] for t in expected)}"
                       f"; found {_show(value)}{hint}", False)]
    if keyword == "enum":
        choices = [str(c) for c in error.validator_value]
        return [(path, f"{subject} must be one of {', '.join(choices)}; found "
                       f"{_show(value)}{did_you_mean(str(value), choices)}", False)]
    if keyword in ("minimum", "maximum"):
        lo, hi = sub.get("minimum"), sub.get("maximum")
        bounds = f"from {lo} to {hi}" if lo is not None and hi is not None else (
            f"at least {lo}" if lo is not None else f"at most {hi}")
        return [(path, f"{subject} must be {bounds}; found {_show(value)}", False)]
    if keyword in ("minItems", "minLength", "minProperties"):
        return [(path, f"{subject} must not be empty", False)]
    if keyword == "uniqueItems" and isinstance(value, list):
        seen: list[object] = []
        for i, item in enumerate(value):
            if item in seen:
                return [((*path, i), f"{subject} lists {_show_value(item, None)} twice; each "
                                     "item may appear once", False)]
            seen.append(item)
    return [(path, f"{subject}: {error.message}", False)]


_TYPES = {"string": "a string", "integer": "an integer", "number": "a number",
          "boolean": "true or false", "object": "a mapping", "array": "a list", "null": "null"}


_SINGULAR = {"queues": "queue", "workers": "worker", "targets": "target", "jobs": "job",
             "schedules": "schedule", "workflows": "workflow",
             "limits": "limit"}


def _name_message(sub: Any, value: object, owner: str, noun: str = "name") -> str:
    """Why `value` is not a valid name; `owner` (" of job 'x'") is set when it is a key."""
    xkind = sub.get("x-kind") if isinstance(sub, dict) else None
    if not isinstance(value, str):
        return f"expected a string; found {_show_value(value)}"
    if xkind == "env-name":
        return (f"environment variable name {value!r}{owner} is not valid: use letters, digits "
                "and '_', not starting with a digit")
    if xkind == "param-name":
        return (f"parameter name {value!r}{owner} is not valid: use lowercase letters, digits "
                "and '_', starting with a letter, at most 63 characters")
    if xkind == "label-key":
        return (f"label key {value!r}{owner} is not valid: use letters, digits, '.', '_', '/', "
                "'-', at most 63 characters")
    if xkind == "name":
        return (f"{noun} {value!r}{owner} is not valid: use lowercase letters, digits, '.', '_' "
                "and '-', starting with a letter or digit, at most 63 characters")
    return (f"{value!r}{owner} is not in the expected form "
            f"({sub.get('description', 'see the schema')})")
