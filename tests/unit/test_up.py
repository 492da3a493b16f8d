"""runner up's supervisor with an injected clock and fake processes: start what the
configuration wants, stop what it no longer does, start a crashed child again with backoff."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runner.up import Plan, Supervisor


class Proc:
    def __init__(self, argv: list[str]) -> None:
        self.argv, self.returncode, self.terminated = argv, None, False

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


def supervisor() -> tuple[Supervisor, list[Proc], Clock]:
    spawned: list[Proc] = []
    clock = Clock()

    def spawn(argv: list[str]) -> Any:
        spawned.append(Proc(argv))
        return spawned[-1]

    return Supervisor(spawn=spawn, clock=clock), spawned, clock


PLAN = Plan(Path("/cfg"), "/src", "main", "reports", None)


def test_plan_names_every_child_and_leaves_out_git_ones_without_a_source() -> None:
    assert list(PLAN.commands(["a", "b"])) == ["reconciler", "beat", "worker a", "worker b",
                                              "publisher"]
    assert PLAN.commands(["a"])["worker a"][-4:] == ["worker", "a", "--repo", "/cfg"]
    plain = Plan(Path("/cfg"), None, "main", "reports", None)
    assert list(plain.commands(["a"])) == ["beat", "worker a"]
    assert "--push" not in PLAN.commands([])["publisher"]  # the branch stays local
    pushed = Plan(Path("/cfg"), "/src", "main", "reports", None, push="origin")
    assert pushed.commands([])["publisher"][-2:] == ["--push", "origin"]


def test_follows_the_configuration_and_restarts_crashed_children_with_backoff() -> None:
    sup, spawned, clock = supervisor()
    sup.step(PLAN.commands(["a"]))
    assert [p.argv[3] for p in spawned] == ["reconcile", "beat", "worker", "publish"]

    sup.step(PLAN.commands(["a", "b"]))  # a worker added by a commit starts
    assert spawned[-1].argv[3:5] == ["worker", "b"]
    worker_a = next(p for p in spawned if p.argv[3:5] == ["worker", "a"])
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
    assert spawned[-1].argv[3] == "beat" and len(spawned) == 6
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
