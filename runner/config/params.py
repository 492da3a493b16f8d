"""Run parameters: the one check of values given for a run against its job's `params:`.

Used by every way a run is asked for (the CLI, the API, a schedule, a workflow node, retry)
and by validation (defaults, a schedule's or node's `params:`). Pure: no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from runner.config.documents import Path
from runner.errors import UsageError


@dataclass(frozen=True)
class Param:
    """A declared input of a job; given per run, it reaches the steps as RUNNER_PARAM_<NAME>.
    Required when it has no default (a default is never None: YAML null is not a value)."""

    name: str
    type: Literal["string", "integer", "number", "boolean"]
    enum: tuple[str | int | float | bool, ...] | None = None
    pattern: str | None = None  # the whole string value must match it
    max_length: int | None = None
    minimum: int | float | None = None
    maximum: int | float | None = None
    default: str | int | float | bool | None = None
    description: str = ""

    @property
    def required(self) -> bool:
        return self.default is None


def param(name: str, v: dict[str, Any]) -> Param:
    """The Param of a validated job's `params:` entry."""
    enum = v.get("enum")
    return Param(name, v["type"], tuple(enum) if enum is not None else None,
                 **{k: v[k] for k in ("pattern", "max_length", "minimum", "maximum", "default",
                                      "description") if k in v})

_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")
_TYPE = {"string": "a string", "integer": "an integer", "number": "a number",
         "boolean": "true or false"}


class ParamsInvalid(UsageError):
    """Values given for a run do not fit its job's `params:`; the message lists every
    problem. Nothing was queued or run."""


def env_name(name: str) -> str:
    """The environment variable a parameter reaches the steps as."""
    return f"RUNNER_PARAM_{name.upper()}"


def env(values: Mapping[str, Any] | None) -> dict[str, str]:
    """A run's parameter values as the environment of its steps (booleans as true/false)."""
    return {env_name(k): (str(v).lower() if isinstance(v, bool) else str(v))
            for k, v in (values or {}).items()}


def value_error(p: Param, value: Any) -> str | None:
    """Why `value` (typed, as JSON or YAML holds it) is not a value of `p`, or None."""
    ok = {"string": isinstance(value, str),
          "integer": isinstance(value, int) and not isinstance(value, bool),
          "number": isinstance(value, int | float) and not isinstance(value, bool)
          and math.isfinite(value),
          "boolean": isinstance(value, bool)}[p.type]
    if not ok:
        return f"must be {_TYPE[p.type]}; found {value!r}"
    if p.enum is not None and value not in p.enum:
        return f"must be one of {', '.join(map(repr, p.enum))}; found {value!r}"
    if isinstance(value, str):
        if p.max_length is not None and len(value) > p.max_length:
            return f"must be at most {p.max_length} characters; found {len(value)}"
        if p.pattern is not None and not _fullmatch(p.pattern, value):
            return f"must match the pattern {p.pattern!r}; found {value!r}"
    if p.minimum is not None and not isinstance(value, str | bool) and value < p.minimum:
        return f"must be at least {p.minimum}; found {value!r}"
    if p.maximum is not None and not isinstance(value, str | bool) and value > p.maximum:
        return f"must be at most {p.maximum}; found {value!r}"
    return None


def _fullmatch(pattern: str, value: str) -> bool:
    try:
        return re.fullmatch(pattern, value) is not None
    except re.error:  # validation reports the pattern itself
        return False


def convert(p: Param, text: str) -> Any:
    """A value given as text (`runner run -p NAME=TEXT`) as the type of `p`: '3' -> 3,
    'false' -> False; text that is not of the type is returned as is (then refused)."""
    if p.type == "boolean" and text.lower() in (*_TRUE, *_FALSE):
        return text.lower() in _TRUE
    try:
        if p.type == "integer":
            return int(text)
        if p.type == "number":
            number = float(text)
            return int(number) if number.is_integer() and "." not in text else number
    except ValueError:
        pass
    return text


def check(params: Iterable[Param], given: Mapping[str, Any]
          ) -> tuple[dict[str, Any], list[tuple[str | None, str, bool]]]:
    """The full set of values (given, else defaults), in declaration order; and every
    problem as (the name given or None, why, whether it is the name that is wrong): an
    unknown name, a wrong value, a required one missing."""
    declared = {p.name: p for p in params}
    values: dict[str, Any] = {}
    problems: list[tuple[str | None, str, bool]] = [
        (name, f"unknown parameter {name!r} ({_takes(declared)})", True)
        for name in given if name not in declared]
    for name, p in declared.items():
        if name not in given:
            if p.required:
                problems.append((None, f"parameter {name!r} is required ({_TYPE[p.type]})",
                                 False))
            else:
                values[name] = p.default
        elif problem := value_error(p, given[name]):
            problems.append((name, f"parameter {name!r} {problem}", False))
        else:
            values[name] = given[name]
    return values, problems


def resolve(job: str, params: Iterable[Param], given: Mapping[str, Any] | None,
            text: bool = False) -> dict[str, Any] | None:
    """The values of a run of `job`: `given` checked (converted first when `text`, as
    from the CLI) and completed with the defaults; None when the job takes none. Raises
    ParamsInvalid naming every problem."""
    params = tuple(params)
    given = given or {}
    if text:
        by_name = {p.name: p for p in params}
        given = {k: convert(by_name[k], v) if k in by_name and isinstance(v, str) else v
                 for k, v in given.items()}
    values, problems = check(params, given)
    if problems:
        raise ParamsInvalid(f"job {job!r} was not run: " + "; ".join(p[1] for p in problems))
    return values if params else None


def declaration_errors(job: str, name: str, v: Any) -> list[tuple[Path, str, bool]]:
    """A declaration's own errors: its pattern, its enum and default against its type."""
    at: Path = ("jobs", job, "params", name)
    what = f"parameter {name!r} of job {job!r}"
    p = declared(name, v)
    if p is None:
        return []
    out: list[tuple[Path, str, bool]] = []
    if p.pattern is not None:
        try:
            re.compile(p.pattern)
        except re.error as e:
            return [((*at, "pattern"), f"{what}: pattern {p.pattern!r} is not a regular "
                                       f"expression ({e})", False)]
    for i, item in enumerate(p.enum or ()):
        if problem := value_error(replace(p, enum=None), item):
            out.append(((*at, "enum", i), f"{what}: enum value {problem}", False))
    if p.default is not None and (problem := value_error(p, p.default)):
        out.append(((*at, "default"), f"{what}: its default {problem}", False))
    return out


def declared(name: str, v: Any) -> Param | None:
    """The Param of a `params:` entry, or None when its shape is wrong (the schema says)."""
    if not isinstance(v, dict) or v.get("type") not in _TYPE:
        return None
    shapes = {"enum": list, "pattern": str, "max_length": int, "minimum": int | float,
              "maximum": int | float, "description": str}
    if any(k in v and (not isinstance(v[k], t) or isinstance(v[k], bool))
           for k, t in shapes.items()):
        return None
    return param(name, v)


def _takes(declared: Mapping[str, Param]) -> str:
    if not declared:
        return "the job takes no parameters"
    return "the job takes " + ", ".join(declared)
