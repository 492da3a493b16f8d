"""Checks of one workflow alone (cached with its file), and the graph functions they rest on.

What a node's `when` means (the runtime follows the same rule): a node may start once every node
of its `after` has ended (succeeded, failed or was skipped), and runs when `when` holds of their
results, else it is skipped. on_success (default): all of them succeeded (true of an empty
`after`); on_failure: any of them failed (never true of an empty `after`); always: any results.
Every job can succeed or fail and every approval be approved or rejected, so a node "can never
run" when no such choice of outcomes makes its condition hold: exact for workflows of up to
EXACT_NODES nodes, beyond that the per-node rule (on_success: every node of `after` can run;
on_failure: one of them can; always: yes), which only misses never-running nodes, never
invents one.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from typing import Any

from runner.config.documents import Path
from runner.config.schema import did_you_mean
from runner.config.semantic import Finding, _d, _l, _zero, selector_error

Graph = Mapping[str, Sequence[str]]  # node -> the nodes of its `after`, nodes in written order
EXACT_NODES = 12
WHENS = ("on_success", "on_failure", "always")


def topological(after: Graph) -> list[str]:
    """The nodes in an order that runs each after its `after` (ties: as written). Nodes on a
    cycle are left out; unknown names in `after` are ignored."""
    index = {n: i for i, n in enumerate(after)}
    waiting = {n: len({p for p in after[n] if p in index}) for n in after}
    then: dict[str, list[str]] = {}
    for n in after:
        for p in {p for p in after[n] if p in index}:
            then.setdefault(p, []).append(n)
    ready = [(index[n], n) for n in after if not waiting[n]]
    heapq.heapify(ready)
    out: list[str] = []
    while ready:
        _, n = heapq.heappop(ready)
        out.append(n)
        for m in then.get(n, ()):
            waiting[m] -= 1
            if not waiting[m]:
                heapq.heappush(ready, (index[m], m))
    return out


def cycle(after: Graph) -> list[str] | None:
    """One cycle in run order, [a, b, c, a] (b is after a, c after b, a after c), starting at its
    node written first; or None."""
    done: set[str] = set()
    for start in after:
        path, on_path, nexts = [start], {start: 0}, [iter(after[start])]
        while nexts:
            p = next(nexts[-1], None)
            if p is None:
                left = path.pop()
                done.add(left)
                del on_path[left]
                nexts.pop()
                continue
            if p not in after or p in done:
                continue
            if p in on_path:
                loop = path[on_path[p]:][::-1]
                order = list(after)
                first = min(range(len(loop)), key=lambda i: order.index(loop[i]))
                loop = loop[first:] + loop[:first]
                return [*loop, loop[0]]
            on_path[p] = len(path)
            path.append(p)
            nexts.append(iter(after[p]))
    return None


def _holds(when: str, results: Sequence[str]) -> bool:
    if when == "on_success":
        return all(r == "success" for r in results)
    if when == "on_failure":
        return "failed" in results
    return True


def can_run(after: Graph, when: Mapping[str, str], exact_up_to: int = EXACT_NODES) -> set[str]:
    """The nodes of an acyclic workflow that run for some outcomes of the nodes before them
    (exact up to `exact_up_to` nodes, else a superset: see the module's text)."""
    order = topological(after)
    if len(order) > exact_up_to:
        ran: set[str] = set()
        for n in order:
            preds = [p in ran for p in after[n]]
            if when[n] == "always" or (all(preds) if when[n] == "on_success" else any(preds)):
                ran.add(n)
        return ran
    ran, state = set(), dict[str, str]()

    def walk(i: int) -> None:
        if i == len(order) or len(ran) == len(order):
            return
        n = order[i]
        if _holds(when[n], [state[p] for p in after[n]]):
            ran.add(n)
            outcomes: tuple[str, ...] = ("success", "failed")
        else:
            outcomes = ("skipped",)
        for state[n] in outcomes:
            walk(i + 1)

    walk(0)
    return ran


def check(name: str, v: Any) -> list[Finding]:
    """Findings of one workflow alone: each node's shape, `after` naming nodes of this
    workflow, no cycle, and no node that can never run."""
    nodes = _d(v, "nodes")
    base: Path = ("workflows", name, "nodes")
    out: list[Finding] = []
    for node, x in nodes.items():
        if isinstance(x, dict):
            out.extend(_node(name, node, x))
    after = {n: [p for p in _l(x, "after") if isinstance(p, str)] for n, x in nodes.items()}
    for node, preds in after.items():
        for i, p in enumerate(preds):
            if p not in nodes:
                out.append(((*base, node, "after", i), f"node {node!r} of workflow {name!r} is "
                            f"after {p!r}, which is not a node of this workflow"
                            f"{did_you_mean(p, nodes)} (nodes: {', '.join(nodes)})", False))
    if out:
        return out
    loop = cycle(after)
    if loop:
        closing = (*base, loop[0], "after", after[loop[0]].index(loop[-2]))
        return [(closing, f"workflow {name!r} has a cycle: {' -> '.join(loop)}; a node cannot "
                          "wait for itself: remove one of these 'after' entries", False)]
    when = {n: x.get("when", "on_success") if isinstance(x, dict) else "" for n, x in
            nodes.items()}
    if any(w not in WHENS for w in when.values()):
        return out  # the schema said what is wrong
    ran = can_run(after, when)
    for node in (n for n in nodes if n not in ran):
        out.append(((*base, node), f"node {node!r} of workflow {name!r} can never run: "
                    f"{_why(after[node], when[node], ran)}", True))
    return out


def _why(after: Sequence[str], when: str, ran: set[str]) -> str:
    if not after:
        return ("when: on_failure waits for a node of 'after' to fail, and 'after' is empty; "
                "list the nodes whose failure it handles in 'after'")
    never = [p for p in after if p not in ran]
    if when == "on_success" and never:
        return (f"it needs all of 'after' to succeed, and node {never[0]!r} never runs; "
                "fix that node or use when: always")
    if when == "on_failure" and len(never) == len(after):
        return (f"it needs a node of 'after' ({', '.join(after)}) to fail, and none of them "
                "ever runs")
    wanted = "succeed" if when == "on_success" else "fail"
    which = "all" if when == "on_success" else "any"
    return (f"no outcome of the nodes before it makes {which} of {', '.join(after)} {wanted} "
            f"(when: {when}); change its 'after' or 'when'")


def _node(workflow: str, name: str, v: dict[str, Any]) -> list[Finding]:
    at: Path = ("workflows", workflow, "nodes", name)
    what = f"node {name!r} of workflow {workflow!r}"
    kinds = [k for k in ("job", "approval") if k in v]
    if len(kinds) != 1:
        found = "has both job and approval" if kinds else "has neither job nor approval"
        return [(at, f"{what} {found}; a node is exactly one of job (a job to run) or "
                     "approval (a question an operator answers)", True)]
    out: list[Finding] = []
    if "limit" in v and kinds == ["approval"]:
        out.append(((*at, "limit"), f"{what}: 'limit' narrows a job's targets and applies to "
                                    "job nodes only", True))
    elif isinstance(v.get("limit"), str) and (problem := selector_error(v["limit"])):
        out.append(((*at, "limit"), f"limit of {what}: {v['limit']!r} {problem}", False))
    if "params" in v and kinds == ["approval"]:
        out.append(((*at, "params"), f"{what}: 'params' gives a job's params and applies to "
                                     "job nodes only", True))
    if "timeout" in v and kinds == ["job"]:
        out.append(((*at, "timeout"), f"{what}: 'timeout' is how long an approval waits and "
                                      "applies to approval nodes only (a job's own timeout "
                                      "limits its run)", True))
    elif _zero(v, "timeout"):
        out.append(((*at, "timeout"), f"timeout of {what} must be more than 0", False))
    return out
