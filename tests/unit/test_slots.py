"""The cluster-wide semaphores' rules (store/slots.py): all-or-nothing, in order of arrival,
leases that lapse."""

from __future__ import annotations

from runner.store.slots import State, free, take

States = dict[str, State | None]


def ask(states: States, wanted: list[tuple[str, int]], holder: str, now: float = 0.0
        ) -> list[str]:
    new, blocked = take(states, wanted, holder, "w@h", now, ttl=5)
    states.update(new)
    return blocked


def test_two_holders_asking_for_two_limits_in_opposite_order_never_deadlock() -> None:
    states: States = {}
    assert ask(states, [("a", 1), ("b", 1)], "x") == []
    assert ask(states, [("b", 1), ("a", 1)], "y") == ["b", "a"]
    states.update(free(states, "x", 1))
    assert ask(states, [("b", 1), ("a", 1)], "y", 1) == []


def test_slots_are_granted_in_order_of_arrival_all_or_nothing() -> None:
    states: States = {}
    assert ask(states, [("a", 1)], "x") == []
    assert ask(states, [("a", 1), ("b", 1)], "y") == ["a"]  # queued in b too: b not taken
    assert ask(states, [("b", 1)], "z") == ["b"]  # y came first in b
    states.update(free(states, "x", 1))
    assert ask(states, [("b", 1)], "z", 1) == ["b"]  # still y's turn
    assert ask(states, [("a", 1), ("b", 1)], "y", 1) == []
    assert set(states["a"]["holders"]) == set(states["b"]["holders"]) == {"y"}  # type: ignore[index]


def test_a_lease_left_unrenewed_lapses_and_an_empty_limit_is_dropped() -> None:
    states: States = {}
    assert ask(states, [("a", 1)], "dead") == []
    assert ask(states, [("a", 1)], "y", 3) == ["a"]
    assert ask(states, [("a", 1)], "y", 6) == []  # dead's lease (until 5) lapsed
    states.update(free(states, "y", 7))
    assert states["a"] is None
