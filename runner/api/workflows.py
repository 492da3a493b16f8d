"""The workflows of a configuration as the API and the dashboard show them (issue 20): pure
functions of a ConfigSet (and of run summaries, for /metrics). Kept here, not in ops/, until
the CLI needs one of these views too."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from runner.config.model import ConfigSet, Node, Workflow
from runner.runs import RunState
from runner.workflow import topological


def _schedules(config: ConfigSet, name: str) -> list[str]:
    """The schedules that run the workflow `name`."""
    return sorted(s.name for s in config.schedules.values()
                  if s.workflow and s.job == name)


def workflows(config: ConfigSet) -> dict[str, dict[str, Any]]:
    """Each workflow: its description, how many nodes, the schedules that run it."""
    return {name: {"description": w.description, "nodes": len(w.nodes),
                   "schedules": _schedules(config, name)}
            for name, w in sorted(config.workflows.items())}


def _node(node: Node, depth: int) -> dict[str, Any]:
    return {"name": node.name, "kind": "approval" if node.approval is not None else "job",
            "job": node.job, "approval": node.approval, "limit": node.limit,
            "timeout": node.timeout, "after": list(node.after), "when": node.when,
            "depth": depth}


def graph(config: ConfigSet, workflow: Workflow) -> dict[str, Any]:
    """A workflow's graph: its nodes in topological order, each with its depth (0 for a
    root, else one more than the deepest node of its `after`: the dashboard's layers), and
    its edges, each with the `when` of the node it leads to."""
    nodes = {n.name: n for n in workflow.nodes}
    depth: dict[str, int] = {}
    for name in topological(workflow):
        depth[name] = 1 + max((depth[a] for a in nodes[name].after), default=-1)
    return {"name": workflow.name, "description": workflow.description,
            "schedules": _schedules(config, workflow.name),
            "nodes": [_node(nodes[n], depth[n]) for n in depth],
            "edges": [{"from": a, "to": n.name, "when": n.when}
                      for n in workflow.nodes for a in n.after]}


def run_states(summaries: Iterable[Mapping[str, Any]], names: Iterable[str]) -> dict[str, int]:
    """How many of the runs are workflow runs (their `job` is one of the workflows' `names`,
    which no job may share), by state; every state named, 0 when none."""
    flows = set(names)
    counts = dict.fromkeys(RunState, 0)
    for r in summaries:
        if r.get("job") in flows and r.get("state") in counts:
            counts[RunState(r["state"])] += 1
    return {str(s): n for s, n in counts.items()}


def metric_lines(counts: Mapping[str, int]) -> list[str]:
    """The Prometheus lines of runner_workflow_runs."""
    return ["# HELP runner_workflow_runs Workflow runs in the store by state (of the newest "
            "10,000 runs).", "# TYPE runner_workflow_runs gauge",
            *(f'runner_workflow_runs{{state="{s}"}} {n}' for s, n in counts.items())]
