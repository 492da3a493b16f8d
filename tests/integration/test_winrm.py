"""The winrm transport: the real pywinrm client against a WS-Management endpoint on loopback
(tests/wsman.py) that runs the commands locally."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from runner.config import model
from runner.executor.base import TargetResult
from runner.executor.engine import Engine
from runner.settings import Settings
from tests.helpers.procs import gone, watching
from tests.helpers.ssh import make_job, run
from tests.servers import free_port
from tests.wsman import Server, start_wsman

PASSWORD = "Winrm-Pass-7731"


@pytest.fixture(scope="module")
def wsman() -> Iterator[Server]:
    server = start_wsman("Administrator", PASSWORD)
    yield server
    server.shutdown()


@pytest.fixture(autouse=True)
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNER_SECRET_TEST_WIN_PASSWORD", PASSWORD)


def target(port: int, **extra: Any) -> model.Target:
    return model.target("win", {"transport": "winrm", "host": "127.0.0.1", "port": port,
                                "scheme": "http", "auth": "basic", "user": "Administrator",
                                "password": "env:RUNNER_SECRET_TEST_WIN_PASSWORD", **extra})


def one(port: int, steps: list[dict[str, Any]], **extra: Any) -> TargetResult:
    return run(make_job(steps, **extra), {"win": target(port)}).targets["win"]


def test_powershell_and_cmd_commands_with_env(wsman: Server) -> None:
    t = one(wsman.port, [{"command": "echo ps $LEVEL"},
                         {"command": "echo cmd $LEVEL; echo warn >&2", "shell": "cmd"}],
            env={"LEVEL": "info"})
    assert (t.status, t.rc, t.error) == ("success", 0, None)
    assert t.stdout == "ps info\ncmd info\n"
    assert t.stderr == "warn\n"
    assert "Create" in wsman.state.requests and "Delete" in wsman.state.requests


def test_exit_code_and_when(wsman: Server) -> None:
    t = one(wsman.port, [{"name": "check", "command": "exit 9"},
                         {"command": "echo recovering", "when": "on_failure"}])
    assert (t.status, t.rc) == ("failed", 9)
    assert t.error == "win: step 'check' exited with status 9"
    assert t.stdout == "recovering\n"


def test_timeout_terminates_the_command(wsman: Server) -> None:
    t0 = time.monotonic()
    with watching(os.getpid(), "sleep 46.1") as sleeps:  # wsman's commands: our children
        t = one(wsman.port, [{"command": "sleep 46.1"}], timeout="1s")
    assert time.monotonic() - t0 < 15
    assert t.status == "timeout"
    assert "Signal" in wsman.state.requests
    assert sleeps and gone(sleeps)


def test_wrong_password_is_an_auth_failure(wsman: Server,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNER_SECRET_TEST_WIN_PASSWORD", "wrong-password")
    t = one(wsman.port, [{"command": "echo never"}])
    assert t.status == "failed"
    assert t.error == (f"win: authentication to http://127.0.0.1:{wsman.port}/wsman as "
                       "Administrator failed: the server refused the credentials")
    assert "wrong-password" not in json.dumps(t.as_dict())


def test_closed_port_is_unreachable() -> None:
    port = free_port()
    t = one(port, [{"command": "echo never"}])
    assert t.status == "failed"
    assert (t.error or "").startswith(f"win: cannot connect to http://127.0.0.1:{port}/wsman: ")


def test_password_is_masked_in_output(wsman: Server) -> None:
    t = one(wsman.port, [{"command": f"echo pass={PASSWORD}"}])
    assert t.stdout == "pass=********\n"


def test_breaker_opens_after_connection_failures() -> None:
    dead = target(free_port())
    engine = Engine(Settings(breaker_threshold=1, breaker_cooldown=3600))
    job = make_job([{"command": "echo never"}])

    async def main() -> list[str]:
        try:
            return [(await engine.run(job, {"win": dead}, {}, run_id=str(i), revision="v"))
                    .targets["win"].status for i in range(2)]
        finally:
            await engine.close()

    assert asyncio.run(main()) == ["failed", "skipped"]
