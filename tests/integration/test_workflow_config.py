"""Workflows as code, up to running them (issue 20): plan, diff, run --dry-run and status on a
real git repository holding the demo with a workflow and a schedule of it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from runner.cli import cli

Commit = Callable[..., str]
NOW = "2026-03-28T12:00:00+01:00"
RELEASE = """workflows:
  release:
    description: check, then clean up after approval; restart on failure
    nodes:
      check:   {job: health-check}
      restart: {job: restart-service, after: [check], when: on_failure}
      approve: {approval: "Clean up now?", after: [check], timeout: 4h}
      cleanup: {job: tmp-cleanup, after: [approve], limit: localhost-batch}
      report:  {job: record-outcome, after: [cleanup, restart], when: always}
"""
SCHEDULE = "schedules:\n  release-hourly: {workflow: release, cron: '0 * * * *'}\n"


def cli_run(repo: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [*args, "--repo", str(repo)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def with_release(commit: Commit) -> None:
    commit({"workflows.d/release.yaml": RELEASE, "schedules.d/release.yaml": SCHEDULE})


def test_plan_shows_the_graph_and_the_workflow_schedule(demo_repo: Path, commit: Commit) -> None:
    with_release(commit)
    code, out = cli_run(demo_repo, "plan", "--now", NOW, "--count", "1")
    assert code == 0, out
    assert "  release-hourly: workflow release, cron 0 * * * * (UTC)" in out
    assert "    approve: approval 'Clean up now?', after [check], timeout 4h" in out
    assert "    report: job record-outcome, after [cleanup, restart], when always" in out
    code, out = cli_run(demo_repo, "plan", "--now", NOW, "--format", "json")
    plan = json.loads(out)
    assert plan["schedules"]["release-hourly"]["workflow"] == "release"
    assert "job" not in plan["schedules"]["release-hourly"]
    assert list(plan["workflows"]["release"]["nodes"]) == ["check", "restart", "approve",
                                                          "cleanup", "report"]
    assert plan["workflows"]["release"]["nodes"]["cleanup"] == {
        "job": "tmp-cleanup", "limit": "localhost-batch", "after": ["approve"],
        "when": "on_success"}
    code, out = cli_run(demo_repo, "plan", "--format", "celery")
    assert code == 0 and "release-hourly" not in out, out  # not a beat entry until it runs


def test_diff_words_nodes_and_edges(demo_repo: Path, commit: Commit) -> None:
    with_release(commit)
    changed = (RELEASE.replace("timeout: 4h", "timeout: 2h")
               .replace("      restart: {job: restart-service, after: [check], when: on_failure}\n",
                        "")
               .replace("after: [cleanup, restart]", "after: [cleanup, check]")
               + "      audit:   {job: record-outcome, after: [report]}\n")
    commit({"workflows.d/release.yaml": changed})
    result = CliRunner().invoke(cli, ["diff", "HEAD~1", "--repo", str(demo_repo), "--now", NOW])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "workflow 'release' changed",
        "    node restart removed",
        "    node approve changed: timeout '4h' -> '2h'",
        "    edge check -> report (always) added",
        "    edge restart -> report (always) removed",
        "    node audit added (job record-outcome, after [report])"]
    result = CliRunner().invoke(cli, ["diff", "HEAD~2", "--repo", str(demo_repo), "--now", NOW,
                                      "--format", "json"])
    found = {c["name"]: c for c in json.loads(result.output)["changes"]}
    assert found["release"]["change"] == "added"
    assert "node approve added (approval 'Clean up now?', after [check], timeout 2h)" in \
        found["release"]["words"]
    assert found["release-hourly"]["fields"][-1] == {"field": "workflow", "before": None,
                                                     "after": "release"}


def test_dry_run_prints_the_nodes_in_run_order(demo_repo: Path, commit: Commit) -> None:
    with_release(commit)
    code, out = cli_run(demo_repo, "run", "release", "--dry-run")
    assert code == 0, out
    assert out.splitlines()[1:] == [
        "nodes in run order (5):",
        "  1. check: job health-check on queue system",
        "       targets (2): localhost, localhost-batch",
        "  2. restart: job restart-service on queue execution, after [check] when on_failure",
        "       targets (1): localhost",
        "  3. approve: approval 'Clean up now?', rejected after 4h, after [check] when "
        "on_success",
        "  4. cleanup: job tmp-cleanup on queue execution, limit localhost-batch, after "
        "[approve] when on_success",
        "       targets (1): localhost-batch",
        "  5. report: job record-outcome on queue system, after [cleanup, restart] when always",
        "       targets (1): localhost"]
    code, out = cli_run(demo_repo, "run", "release", "--dry-run", "--format", "json")
    nodes = json.loads(out)["nodes"]
    assert [n["name"] for n in nodes] == ["check", "restart", "approve", "cleanup", "report"]
    assert nodes[2] == {"name": "approve", "kind": "approval", "after": ["check"],
                        "when": "on_success", "question": "Clean up now?", "timeout": 14400}


def test_limiting_a_workflow_run_is_refused_in_one_sentence(
        demo_repo: Path, commit: Commit) -> None:
    with_release(commit)
    for args in (("run", "release", "--dry-run", "--limit", "localhost"),
                 ("run", "release", "--enqueue", "--limit", "localhost")):
        words = "--limit narrows a job's targets; release is a workflow"
        code, out = cli_run(demo_repo, *args)
        assert code == 2 and words in out, out


def test_status_names_the_workflow_a_schedule_runs(demo_repo: Path, commit: Commit) -> None:
    with_release(commit)
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}  # the embedded store
    done = subprocess.run([sys.executable, "-m", "runner", "status", "--repo", str(demo_repo),
                           "--format", "json"], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)["schedules"]
    assert shown["release-hourly"]["workflow"] == "release"
    assert "job" not in shown["release-hourly"]
    assert shown["nightly-cleanup"]["job"] == "tmp-cleanup"


def test_the_readme_workflow_example_validates(demo_repo: Path, commit: Commit) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    example = re.search(r"```yaml\n(workflows:\n.*?)```", readme, re.S)
    assert example is not None
    jobs = re.findall(r"\{job: ([a-z-]+)", example[1])
    assert len(jobs) == 5
    commit({"workflows.d/readme.yaml": example[1],
            "targets.d/prod.yaml": "targets:\n  prod-1: {transport: local, labels: {env: prod}}\n",
            "jobs.d/readme.yaml": "jobs:\n" + "".join(
                f"  {j}: {{queue: system, targets: [prod-1], steps: [{{command: 'true'}}]}}\n"
                for j in jobs)})
    code, out = cli_run(demo_repo, "validate", "--no-cache")
    assert code == 0, out
    assert out.startswith("ok: 2 queues, 2 workers, 3 targets, 9 jobs, 3 schedules, 2 workflows")
