"""The pure pieces of the executor: output tails, masking, settings, status rules."""

from __future__ import annotations

import subprocess

import pytest

from runner.errors import UsageError
from runner.executor.base import MASK, Masker, Tail, run_status, sh_command
from runner.settings import Settings


def test_tail_keeps_the_end_and_counts_the_rest() -> None:
    t = Tail(5)
    for chunk in (b"abc", b"defg", b"h"):
        t.write(chunk)
    assert (bytes(t.buf), t.dropped) == (b"defgh", 3)


@pytest.mark.parametrize(("written", "cap", "shown"), [
    (b"token=hunter22!", 100, f"token={MASK}!"),
    (b"hunter22hunter22", 100, MASK + MASK),
    (b"xxxxhunter22 end", 8, f"[... 8 bytes cut ...]\n{MASK} end"),  # cut inside the secret
    (b"hunter2 is not it", 100, "hunter2 is not it"),
])
def test_masker_output(written: bytes, cap: int, shown: str) -> None:
    tail = Tail(cap)
    tail.write(written)
    assert Masker(["hunter22", ""]).output(tail) == shown


def test_masker_masks_the_longest_secret_first() -> None:
    assert Masker(["abc", "abcdef"]).text("x abcdef y abc") == f"x {MASK} y {MASK}"


@pytest.mark.parametrize(("statuses", "overall"), [
    (["success", "success"], "success"),
    ([], "success"),
    (["success", "timeout"], "failed"),
    (["skipped"], "failed"),
    (["failed", "cancelled"], "cancelled"),
])
def test_run_status(statuses: list[str], overall: str) -> None:
    assert run_status(statuses) == overall


def test_env_values_reach_the_shell_unchanged() -> None:
    value = "it's \"quoted\" $HOME `date` \\ end"
    line = sh_command('printf %s "$V"', {"V": value}, None)
    done = subprocess.run(["/bin/sh", "-c", line], capture_output=True, text=True, check=True)
    assert done.stdout == value


@pytest.mark.parametrize(("env", "expected"), [
    ({}, Settings()),
    ({"RUNNER_CONNECT_TIMEOUT": "5s", "RUNNER_OUTPUT_CAP": "2048"},
     Settings(connect_timeout=5, output_cap=2048)),
    ({"RUNNER_BREAKER_COOLDOWN": "2m", "RUNNER_IDLE_TIMEOUT": "0"},
     Settings(breaker_cooldown=120, idle_timeout=0)),
])
def test_settings_from_env(env: dict[str, str], expected: Settings) -> None:
    assert Settings.from_env(env) == expected


@pytest.mark.parametrize(("env", "message"), [
    ({"RUNNER_OUTPUT_CAP": "big"}, "RUNNER_OUTPUT_CAP='big' is not a number"),
    ({"RUNNER_SSH_MAX_SESSIONS": "0"}, "RUNNER_SSH_MAX_SESSIONS='0' must be at least 1"),
])
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Settings.from_env(env)
