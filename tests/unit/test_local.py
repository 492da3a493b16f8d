"""The local transport: which commands skip the shell, and that the result is the same either
way (real processes)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from runner.executor.base import Tail
from runner.executor.local import LocalConnector, LocalTransport, _plain


@pytest.mark.parametrize(("command", "argv"), [
    ("true", ["true"]),
    ("uptime", ["uptime"]),
    ("systemctl  restart app.service", ["systemctl", "restart", "app.service"]),
    ("/usr/bin/df -h /var/lib", ["/usr/bin/df", "-h", "/var/lib"]),
    ("env A=1", ["env", "A=1"]),
    ("A=1 env", None),          # an assignment
    ("echo hi", None),          # a builtin that differs from /bin/echo
    ("cd /tmp", None),
    ("exit 3", None),
    ("test -f x", None),
    ("ls *.log", None),         # a glob
    ("ls ~", None),             # tilde expansion
    ("echo $HOME", None),
    ("a | b", None),
    ("a;b", None),
    ("a && b", None),
    ("a > f", None),
    ("a 'b c'", None),
    ('a "b"', None),
    ("a\\ b", None),
    ("a\tb", None),
    ("a\nb", None),
    ("a # comment", None),
    ("if", None),
    ("", None),
    ("   ", None),
])
def test_which_commands_skip_the_shell(command: str, argv: list[str] | None) -> None:
    assert _plain(command) == argv


@pytest.mark.parametrize(("command", "rc", "stdout", "stderr"), [
    ("true", 0, "", ""),
    ("false", 1, "", ""),
    ("printf %s,%s a b", 0, "a,b", ""),
    ("no-such-program-xyz arg", 127, "", "not found"),  # the shell's message and status
    ("./not-executable", 126, "", "Permission denied"),
    ("echo $PLAIN_TEST", 0, "from-env\n", ""),
])
def test_a_command_runs_the_same_with_or_without_the_shell(
        tmp_path: Path, command: str, rc: int, stdout: str, stderr: str) -> None:
    (tmp_path / "not-executable").write_text("true\n")
    out, err = Tail(4096), Tail(4096)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        got = asyncio.run(LocalTransport("here").run(command, {"PLAIN_TEST": "from-env"}, out,
                                                     err))
    finally:
        os.chdir(cwd)
    assert got == rc
    assert bytes(out.buf).decode() == stdout
    assert stderr in bytes(err.buf).decode()


@pytest.mark.parametrize(("command", "data", "stdout"), [
    ("cat", b"hello", b"hello"),
    ("wc -c", b"x" * 300_000, b"300000"),  # more than a pipe holds: written while it reads
    ("true", b"x" * 300_000, b""),         # never read: the command still ends, rc 0
])
def test_stdin_reaches_the_command(command: str, data: bytes, stdout: bytes) -> None:
    out, err = Tail(1 << 20), Tail(4096)
    rc = asyncio.run(LocalTransport("here").run(command, {}, out, err, stdin=data))
    assert (rc, bytes(out.buf).strip()) == (0, stdout)


def test_a_command_gets_no_descriptor_of_the_worker_but_0_1_2() -> None:
    inherited = os.open(os.devnull, os.O_RDONLY)
    os.set_inheritable(inherited, True)  # as a worker's parent may hand one down
    try:
        LocalConnector()
        out = Tail(4096)
        rc = asyncio.run(LocalTransport("here").run("ls /proc/self/fd", {}, out, Tail(4096)))
    finally:
        os.close(inherited)
    # ls sees its own directory descriptor besides 0, 1, 2
    assert rc == 0
    assert len(bytes(out.buf).split()) == 4, bytes(out.buf)


def test_a_killed_command_reports_the_signal() -> None:
    rc = asyncio.run(LocalTransport("here").run("kill -9 $$", {}, Tail(99), Tail(99)))
    assert rc == -9


def test_output_larger_than_a_pipe_is_read_whole() -> None:
    out = Tail(1 << 20)
    rc = asyncio.run(LocalTransport("here").run("head -c 300000 /dev/zero", {}, out, Tail(99)))
    assert (rc, len(out.buf)) == (0, 300000)


def test_a_command_ends_when_its_process_exits_not_when_what_it_left_behind_does() -> None:
    out = Tail(4096)
    started = time.monotonic()
    rc = asyncio.run(LocalTransport("here").run("sleep 30 & echo $!", {}, out, Tail(99)))
    left = int(bytes(out.buf))  # the sleep, still holding the command's stdout
    try:
        assert rc == 0
        assert time.monotonic() - started < 10  # not the 30 s of the sleep
    finally:
        os.kill(left, signal.SIGKILL)
