"""runner up's supervisor with an injected clock and fake processes: start what the
configuration wants, stop what it no longer does, start a crashed child again with backoff,
stop everything when a child fails at start."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import pytest

from runner.errors import UsageError
from runner.up import STARTUP, Plan, Supervisor


class Proc:
    def __init__(self, argv: list[str], stderr: bytes | None = None) -> None:
        self.argv, self.returncode, self.terminated = argv, None, False
        self.stderr = None if stderr is None else io.BytesIO(stderr)

    def poll(self) -> int | None:
        return self.returncode

    def terminate(self) -> None:
        self.terminated, self.returncode = True, -15

    def wait(self, timeout: float) -> int | None:
        return self.returncode

    def kill(self) -> None:
        self.returncode = -9


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def supervisor(stderr: bytes | None = None) -> tuple[Supervisor, list[Proc], Clock]:
    spawned: list[Proc] = []
    clock = Clock()

    def spawn(argv: list[str]) -> Any:
        spawned.append(Proc(argv, stderr))
        return spawned[-1]

    return Supervisor(spawn=spawn, clock=clock), spawned, clock


PLAN = Plan(Path("/cfg"), "/src", "main", "reports", None)


def test_plan_names_every_child_and_leaves_out_git_ones_without_a_source() -> None:
    assert list(PLAN.commands(["a", "b"])) == ["reconciler", "beat", "worker a", "worker b",
                                              "publisher"]
    assert PLAN.commands(["a"])["worker a"][-4:] == ["worker", "a", "--repo", "/cfg"]
    # no module of the working directory (a configuration repository) is importable in them
    assert {tuple(c[:4]) for c in PLAN.commands(["a"]).values()} == {
        (sys.executable, "-P", "-m", "runner")}
    plain = Plan(Path("/cfg"), None, "main", "reports", None)
    assert list(plain.commands(["a"])) == ["beat", "worker a"]
    assert "--push" not in PLAN.commands([])["publisher"]  # the branch stays local
    pushed = Plan(Path("/cfg"), "/src", "main", "reports", None, push="origin")
    assert pushed.commands([])["publisher"][-2:] == ["--push", "origin"]


def test_follows_the_configuration_and_restarts_crashed_children_with_backoff() -> None:
    sup, spawned, clock = supervisor()
    sup.step(PLAN.commands(["a"]))
    assert [p.argv[4] for p in spawned] == ["reconcile", "beat", "worker", "publish"]

    sup.step(PLAN.commands(["a", "b"]))  # a worker added by a commit starts
    assert spawned[-1].argv[4:6] == ["worker", "b"]
    worker_a = next(p for p in spawned if p.argv[4:6] == ["worker", "a"])
    sup.step(PLAN.commands(["b"]))  # a removed one is stopped
    assert worker_a.terminated
    assert len(spawned) == 5

    beat = spawned[1]
    beat.returncode = 1  # crashes at once: started again after 1 s, then 2 s, then 4 s
    clock.now += 0.5
    sup.step(PLAN.commands(["b"]))
    assert len(spawned) == 5
    clock.now += 1.0
    sup.step(PLAN.commands(["b"]))
    assert spawned[-1].argv[4] == "beat" and len(spawned) == 6
    spawned[-1].returncode = 1
    clock.now += 1.9
    sup.step(PLAN.commands(["b"]))
    sup.step(PLAN.commands(["b"]))
    assert len(spawned) == 6  # waiting out the 2 s
    clock.now += 2.0
    sup.step(PLAN.commands(["b"]))
    assert len(spawned) == 7
    spawned[-1].returncode = 1
    sup.step(PLAN.commands(["b"]))
    clock.now += 3.9
    sup.step(PLAN.commands(["b"]))
    assert len(spawned) == 7  # 4 s now
    clock.now += 0.2
    sup.step(PLAN.commands(["b"]))
    assert len(spawned) == 8
    clock.now += 61  # ran a minute: its backoff starts over at 1 s
    spawned[-1].returncode = 1
    sup.step(PLAN.commands(["b"]))
    clock.now += 1.0
    sup.step(PLAN.commands(["b"]))
    assert len(spawned) == 9

    sup.stop()
    assert all(p.returncode is not None for p in spawned)


CAUSE = b"api: starting\nerror: cannot listen on 127.0.0.1:8080: address already in use\n"


def test_a_child_of_the_start_that_exits_with_status_2_stops_up_with_its_cause() -> None:
    sup, spawned, clock = supervisor(CAUSE)
    sup.step(PLAN.commands(["a"]))
    clock.now += 2.0
    spawned[1].returncode = 2  # beat: a usage or environment error
    with pytest.raises(UsageError, match=r"^beat failed at start \(exit status 2\): cannot "
                                         r"listen on 127.0.0.1:8080: address already in use$"):
        sup.step(PLAN.commands(["a"]))
    assert len(spawned) == 4  # not started again
    sup.stop()
    assert all(p.returncode is not None for p in spawned)


@pytest.mark.parametrize("how", ["ran a while", "second start", "added later", "status 1"])
def test_a_child_that_was_running_or_was_added_later_is_restarted_even_on_status_2(
        how: str) -> None:
    sup, spawned, clock = supervisor()
    sup.step(PLAN.commands(["a"]))
    beat = spawned[1]
    if how == "ran a while":
        clock.now += STARTUP
    elif how == "second start":
        beat.returncode = 1
        sup.step(PLAN.commands(["a"]))
        clock.now += 1.0
        sup.step(PLAN.commands(["a"]))
        beat = spawned[-1]
    elif how == "added later":
        sup.step(PLAN.commands(["a", "b"]))
        beat = spawned[-1]
    beat.returncode = 1 if how == "status 1" else 2
    started = len(spawned)
    sup.step(PLAN.commands(["a", "b"] if how == "added later" else ["a"]))
    clock.now += 2.0  # the backoff: 1 s, or 2 s after a second exit
    sup.step(PLAN.commands(["a", "b"] if how == "added later" else ["a"]))
    assert len(spawned) == started + 1 and spawned[-1].argv == beat.argv


def test_the_cause_is_the_last_line_a_real_child_wrote_to_stderr(
        capfd: pytest.CaptureFixture[str]) -> None:
    sup = Supervisor()  # real processes, real pipes
    code = ("import sys; print('starting', file=sys.stderr); "
            "print('error: no such thing', file=sys.stderr); sys.exit(2)")
    sup.step({"api": [sys.executable, "-c", code]})
    proc = sup.children["api"].proc
    assert proc is not None
    proc.wait(30)
    with pytest.raises(UsageError, match=r"^api failed at start \(exit status 2\): no such thing$"):
        sup.step({"api": []})
    sup.stop()
    assert "starting\n" in capfd.readouterr().err  # copied to up's stderr as it came
