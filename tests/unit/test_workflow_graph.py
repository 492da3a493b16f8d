"""The graph functions behind workflow validation and dry runs (runner/config/workflows.py)."""

from __future__ import annotations

import itertools
import random

from runner.config.workflows import can_run, cycle, topological

RELEASE = {"build": [], "test": ["build"], "rollback": ["test"], "approve": ["test"],
           "promote": ["approve"], "report": ["promote", "rollback"]}
RELEASE_WHEN = {"build": "on_success", "test": "on_success", "rollback": "on_failure",
                "approve": "on_success", "promote": "on_success", "report": "always"}


def test_topological_order_keeps_the_written_order_where_it_may() -> None:
    assert topological(RELEASE) == ["build", "test", "rollback", "approve", "promote", "report"]
    diamond = {"join": ["left", "right"], "right": ["top"], "left": ["top"], "top": []}
    assert topological(diamond) == ["top", "right", "left", "join"]


def test_cycle_is_the_path_in_run_order_from_the_node_written_first() -> None:
    assert cycle(RELEASE) is None
    assert cycle({"x": [], "a": ["c"], "b": ["a"], "c": ["b"]}) == ["a", "b", "c", "a"]
    assert cycle({"c": ["b"], "b": ["a"], "a": ["c"]}) == ["c", "a", "b", "c"]
    assert cycle({"a": ["a"]}) == ["a", "a"]


def test_every_node_of_the_issue_example_can_run() -> None:
    assert can_run(RELEASE, RELEASE_WHEN) == set(RELEASE)


def test_exact_check_sees_outcomes_that_exclude_each_other() -> None:
    after = {"a": [], "b": ["a"], "c": ["a", "b"]}  # b runs only when a failed
    when = {"a": "on_success", "b": "on_failure", "c": "on_success"}
    assert can_run(after, when) == {"a", "b"}
    assert can_run(after, when, exact_up_to=0) == {"a", "b", "c"}  # the per-node rule


def test_per_node_rule_finds_what_can_never_hold() -> None:
    after = {"fix": [], "verify": ["fix"], "report": ["fix"], "other": ["verify", "report"]}
    when = {"fix": "on_failure", "verify": "on_success", "report": "always",
            "other": "on_failure"}
    for exact_up_to in (0, 12):
        assert can_run(after, when, exact_up_to) == {"report", "other"}


def test_per_node_rule_never_calls_a_node_dead_that_can_run() -> None:
    rng = random.Random(20)
    for _ in range(300):
        names = [f"n{i}" for i in range(rng.randrange(1, 8))]
        after = {n: rng.sample(names[:i], rng.randrange(min(i, 3) + 1))
                 for i, n in enumerate(names)}
        when = {n: rng.choice(("on_success", "on_failure", "always")) for n in names}
        exact = can_run(after, when)
        assert exact <= can_run(after, when, exact_up_to=0)
        assert exact == _brute_force(after, when), (after, when)


def _brute_force(after: dict[str, list[str]], when: dict[str, str]) -> set[str]:
    """Every choice of success or failure for every node, the graph walked for each."""
    ran: set[str] = set()
    order = topological(after)
    for outcomes in itertools.product(("success", "failed"), repeat=len(order)):
        state: dict[str, str] = {}
        for n, outcome in zip(order, outcomes, strict=True):
            results = [state[p] for p in after[n]]
            holds = (all(r == "success" for r in results) if when[n] == "on_success" else
                     "failed" in results if when[n] == "on_failure" else True)
            state[n] = outcome if holds else "skipped"
            ran |= {n} if holds else set()
    return ran
