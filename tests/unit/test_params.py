"""The one check of a run's params against its job's declaration (config/params.py)."""

from __future__ import annotations

from typing import Any

import pytest

from runner.config.params import Param, ParamsInvalid, env, resolve

DECL = (
    Param("service", "string", enum=("nginx", "app"), default="app"),
    Param("drain", "boolean", default=True),
    Param("batch", "integer", minimum=1, maximum=50, default=5),
    Param("ratio", "number", minimum=0, maximum=1, default=0.5),
    Param("host", "string", pattern="[a-z][a-z0-9-]*", max_length=10, default="web"),
    Param("ticket", "string"),  # no default: required
)
DEFAULTS = {"service": "app", "drain": True, "batch": 5, "ratio": 0.5, "host": "web"}

# (given, text (from the CLI), the values, or the words of the error)
CASES: list[tuple[dict[str, Any], bool, dict[str, Any] | list[str]]] = [
    ({"ticket": "T-1"}, False, {**DEFAULTS, "ticket": "T-1"}),
    ({"ticket": "x", "batch": "3", "drain": "false", "ratio": "0.25"}, True,
     {**DEFAULTS, "ticket": "x", "batch": 3, "drain": False, "ratio": 0.25}),
    ({"ticket": "x", "drain": "yes", "ratio": "1"}, True,
     {**DEFAULTS, "ticket": "x", "drain": True, "ratio": 1}),
    ({"ticket": "$(touch pwned); ;|&"}, True, {**DEFAULTS, "ticket": "$(touch pwned); ;|&"}),
    ({"ticket": "x", "batch": "3"}, False, ["parameter 'batch' must be an integer", "'3'"]),
    ({"ticket": "x", "batch": True}, False, ["'batch' must be an integer", "True"]),
    ({"ticket": "x", "drain": "false"}, False, ["'drain' must be true or false"]),
    ({"ticket": "x", "batch": "three"}, True, ["'batch' must be an integer", "'three'"]),
    ({"ticket": "x", "batch": 51}, False, ["'batch' must be at most 50", "51"]),
    ({"ticket": "x", "batch": "0"}, True, ["'batch' must be at least 1", "found 0"]),
    ({"ticket": "x", "ratio": 1.5}, False, ["'ratio' must be at most 1"]),
    ({"ticket": "x", "service": "x; rm -rf /"}, True,
     ["'service' must be one of 'nginx', 'app'", "'x; rm -rf /'"]),
    ({"ticket": "x", "host": "web 1"}, True, ["'host' must match the pattern"]),
    ({"ticket": "x", "host": "a-very-long-host"}, True, ["'host' must be at most 10 characters"]),
    ({"ticket": "x", "host": "-web"}, True, ["'host' must match"]),  # whole value, not a part
    ({}, False, ["parameter 'ticket' is required (a string)"]),
    ({"ticket": "x", "servise": "nginx"}, True,
     ["unknown parameter 'servise'", "takes service, drain, batch, ratio, host, ticket"]),
    ({"batch": 0, "servise": 1}, False,  # every problem at once
     ["unknown parameter 'servise'", "'ticket' is required", "'batch' must be at least 1"]),
]


@pytest.mark.parametrize(("given", "text", "want"), CASES)
def test_resolve(given: dict[str, Any], text: bool, want: dict[str, Any] | list[str]) -> None:
    if isinstance(want, dict):
        assert resolve("restart", DECL, given, text) == want
        return
    with pytest.raises(ParamsInvalid) as e:
        resolve("restart", DECL, given, text)
    assert str(e.value).startswith("job 'restart' was not run: ")
    for words in want:
        assert words in str(e.value)


def test_a_job_without_params() -> None:
    assert resolve("j", (), None) is None
    with pytest.raises(ParamsInvalid, match="unknown parameter 'x' \\(the job takes no "):
        resolve("j", (), {"x": "1"}, text=True)


def test_env_names_and_values() -> None:
    assert env({"service": "nginx", "drain": False, "batch": 3, "ratio": 0.5}) == {
        "RUNNER_PARAM_SERVICE": "nginx", "RUNNER_PARAM_DRAIN": "false",
        "RUNNER_PARAM_BATCH": "3", "RUNNER_PARAM_RATIO": "0.5"}
    assert env(None) == {}
