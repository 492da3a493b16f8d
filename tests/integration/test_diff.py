"""`runner diff` on real git repositories: reads git objects, never the worktree."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from runner.cli import cli
from tests.helpers.repos import git

Commit = Callable[..., str]
NOW = "2026-03-28T12:00:00+01:00"


def diff(repo: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["diff", *args, "--repo", str(repo), "--now", NOW])
    return result.exit_code, result.output


def test_describes_changes_field_by_field_with_fire_times(demo_repo: Path, commit: Commit) -> None:
    schedules = (demo_repo / "schedules.d/ops.yaml").read_text()
    changed = schedules.replace('cron: "30 2 * * *"', 'cron: "0 4 * * *"').replace(
        "nightly-cleanup:\n    job: tmp-cleanup", "nightly-cleanup:\n    job: health-check")
    commit({"schedules.d/ops.yaml": changed,
            "targets.d/extra.yaml": "targets:\n  db-1: {transport: local, groups: [demo]}\n",
            "jobs.d/maintenance.yaml": None})
    code, out = diff(demo_repo, "HEAD~1")
    assert code == 0, out
    assert "job 'tmp-cleanup' removed" in out
    assert "target 'db-1' added" in out
    assert "schedule 'nightly-cleanup' changed" in out
    assert "cron: '30 2 * * *' -> '0 4 * * *'" in out
    assert "job: 'tmp-cleanup' -> 'health-check'" in out
    # the spring-forward night: 02:30 does not exist in Berlin, so before it fired at 03:00
    assert "next fires before: 2026-03-29T03:00:00+02:00" in out
    assert "next fires after:  2026-03-29T04:00:00+02:00" in out


def test_json_format_and_no_change(demo_repo: Path) -> None:
    result = CliRunner().invoke(cli, ["diff", "HEAD", "HEAD", "--repo", str(demo_repo),
                                      "--format", "json"])
    assert result.exit_code == 0
    assert json.loads(result.output)["changes"] == []
    code, out = diff(demo_repo, "HEAD", "HEAD")
    assert code == 0 and "no changes" in out


def test_invalid_head_prints_errors_and_exits_1(demo_repo: Path, commit: Commit) -> None:
    commit({"jobs.d/broken.yaml": "jobs:\n  x:\n    queue: nope\n    targets: [localhost]\n"
                                  "    steps: [{command: 'true'}]\n"})
    code, out = diff(demo_repo, "HEAD~1")
    assert code == 1
    assert "jobs.d/broken.yaml:3:12: error: job 'x' uses queue 'nope'" in out


def test_reads_git_objects_not_the_worktree(demo_repo: Path, commit: Commit) -> None:
    base = git(demo_repo, "rev-parse", "HEAD")
    commit({"targets.d/extra.yaml": "targets:\n  db-1: {transport: local}\n"})
    (demo_repo / "queues.yaml").write_text("garbage: [")  # uncommitted, must not matter
    status_before = git(demo_repo, "status", "--porcelain")
    code, out = diff(demo_repo, base, "HEAD")
    assert code == 0, out
    assert "target 'db-1' added" in out
    assert git(demo_repo, "status", "--porcelain") == status_before


def test_bad_revision_and_not_a_repo_exit_2(demo_repo: Path, tmp_path: Path) -> None:
    code, out = diff(demo_repo, "no-such-branch")
    assert code == 2 and "'no-such-branch' is not a revision" in out
    code, out = diff(tmp_path, "HEAD")
    assert code == 2 and "not a git repository" in out
