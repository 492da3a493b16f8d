"""The pure pieces of the executor: output tails, masking, settings, status rules."""

from __future__ import annotations

import os
import random
import subprocess

import pytest

from runner.errors import UsageError
from runner.executor.base import MASK, Masker, Tail, run_status
from runner.executor.posix import env_stdin, sh_command
from runner.settings import Settings


def test_tail_keeps_the_end_and_counts_the_rest() -> None:
    t = Tail(5)
    for chunk in (b"abc", b"defg", b"h"):
        t.write(chunk)
    assert (bytes(t.buf), t.dropped) == (b"defgh", 3)


@pytest.mark.parametrize(("written", "cap", "shown"), [
    (b"token=hunter22!", 100, f"token={MASK}!"),
    (b"hunter22hunter22", 100, MASK + MASK),
    (b"xxxxhunter22 end", 8, "[... 8 bytes cut ...]\n**** end"),  # masked, then cut
    (b"hunter2 is not it", 100, "hunter2 is not it"),
])
def test_masker_output(written: bytes, cap: int, shown: str) -> None:
    tail = Tail(cap, Masker(["hunter22", ""]))
    tail.write(written)
    assert tail.text() == shown


def test_masker_masks_overlapping_secrets_whole() -> None:
    masker = Masker(["abc", "abcdef", "efgh"])
    assert masker.text("x abcdefgh y abc") == f"x {MASK} y {MASK}"


FILLER = b"xyz .\n"
SECRETS = ["ABCDEFGH", "FGHIJ", "KLMNOPQRSTUVWXYZ"]


@pytest.mark.parametrize("seed", range(40))
def test_a_cut_stream_never_keeps_a_part_of_a_secret(seed: int) -> None:
    """Output written in random pieces, with secrets (overlapping ones too) anywhere, cut to a
    random cap: not one letter of a secret is left (the filler has none)."""
    rnd = random.Random(seed)
    pieces = [rnd.choice([*SECRETS, "ABCDEFGHIJ"]).encode() if rnd.random() < 0.3 else
              bytes(rnd.choices(FILLER, k=rnd.randint(1, 12))) for _ in range(60)]
    stream = b"".join(pieces)
    tail = Tail(rnd.randint(1, len(stream)), Masker(SECRETS))
    at = 0
    while at < len(stream):
        n = rnd.randint(1, 20)
        tail.write(stream[at:at + n])
        at += n
    shown = tail.text().partition("cut ...]\n")[2] if tail.dropped else tail.text()
    assert not set(shown) & set("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), shown


def test_a_secret_that_is_not_utf8_is_masked_in_bytes_and_text() -> None:
    secret = os.fsdecode(b"\xff\xfe-key")
    masker = Masker([secret])
    assert masker.mask(b"a \xff\xfe-key b") == f"a {MASK} b".encode()
    assert masker.text(f"error: {secret}") == f"error: {MASK}"
    tail = Tail(100, masker)
    tail.write(b"\xff\xfe-k")
    tail.write(b"ey!")
    assert tail.text() == f"{MASK}!"


def test_a_download_cut_inside_a_secret_masks_its_start() -> None:
    assert Masker(["hunter22"]).mask(b"data: hunt", cut=True) == f"data: {MASK}".encode()
    assert Masker(["hunter22"]).mask(b"data: hunt") == b"data: hunt"  # not cut: its own


@pytest.mark.parametrize(("statuses", "overall"), [
    (["success", "success"], "success"),
    ([], "success"),
    (["success", "timeout"], "failed"),
    (["skipped"], "failed"),
    (["failed", "cancelled"], "cancelled"),
])
def test_run_status(statuses: list[str], overall: str) -> None:
    assert run_status(statuses) == overall


def remote(line: str, stdin: bytes) -> subprocess.Popen[bytes]:
    """`line` as sshd runs it (a session of its own), fed `stdin` without an end of file."""
    proc = subprocess.Popen(["/bin/sh", "-c", line], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, start_new_session=True)
    assert proc.stdin is not None
    proc.stdin.write(stdin)
    proc.stdin.flush()
    return proc


def test_env_values_and_stdin_reach_the_shell_unchanged() -> None:
    value = "it's \"quoted\" $HOME `date` \\ end"
    proc = remote(sh_command('printf %s "$V"; cat; cat', None), env_stdin({"V": value}, b"rest\n"))
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.read() == value.encode() + b"rest\n"  # the value, then the step's stdin
    assert proc.wait(10) == 0
    proc.stdin.close()


def test_the_remote_command_dies_when_its_stdin_ends() -> None:
    """The connection dropped (sshd closes the session's stdin): its process group is killed."""
    proc = remote(sh_command("sleep 61.7; echo survived", None), env_stdin({}))
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()
    assert proc.stdout.read() == b""  # killed (SIGKILL), never reached echo
    assert proc.wait(10) == -9


@pytest.mark.parametrize(("env", "expected"), [
    ({}, Settings()),
    ({"RUNNER_CONNECT_TIMEOUT": "5s", "RUNNER_OUTPUT_CAP": "2048"},
     Settings(connect_timeout=5, output_cap=2048)),
    ({"RUNNER_BREAKER_COOLDOWN": "2m", "RUNNER_IDLE_TIMEOUT": "0"},
     Settings(breaker_cooldown=120, idle_timeout=0)),
    ({"RUNNER_LOCAL_ENV": "JAVA_HOME, PROXY_*", "RUNNER_SECRET_ENV": "APP_SECRET_*"},
     Settings(local_env=("JAVA_HOME", "PROXY_*"), secret_env=("APP_SECRET_*",))),
    ({"CREDENTIALS_DIRECTORY": "/run/credentials/runner.service"},
     Settings(secret_dirs=("/run/secrets", "/etc/runner/secrets",
                           "/run/credentials/runner.service"))),
    ({"RUNNER_SECRET_DIRS": "/srv/a,/srv/b", "CREDENTIALS_DIRECTORY": "/run/c"},
     Settings(secret_dirs=("/srv/a", "/srv/b"))),
])
def test_settings_from_env(env: dict[str, str], expected: Settings) -> None:
    assert Settings.from_env(env) == expected


@pytest.mark.parametrize(("env", "message"), [
    ({"RUNNER_OUTPUT_CAP": "big"}, "RUNNER_OUTPUT_CAP='big' is not a number"),
    ({"RUNNER_SSH_MAX_SESSIONS": "0"}, "RUNNER_SSH_MAX_SESSIONS='0' must be at least 1"),
    ({"RUNNER_SECRET_DIRS": "/run/secrets,secrets"},
     "RUNNER_SECRET_DIRS: 'secrets' is not an absolute path"),
    ({"RUNNER_COMMIT_URL": "https://git.example/c/"}, r"RUNNER_COMMIT_URL=.* has no \{sha\}"),
])
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Settings.from_env(env)
