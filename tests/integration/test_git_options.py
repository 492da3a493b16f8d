"""Issue 16, finding 7: a --source, --push or branch that git would read as an option is a
usage error (exit 2) before any git runs, and every git call ends its options before the
values it passes (`--end-of-options`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.errors import ReportError, SourceError
from tests.helpers.repos import git, runner, up_fails
from tests.servers import free_port

OPTION = "starts with '-', which git would read as an option"
BRANCH = "is not a branch name git accepts"


@pytest.mark.parametrize(("args", "says"), [
    (("reconcile", "--once", "--source", "--upload-pack=touch {pwned}"), OPTION),
    (("reconcile", "--once", "--branch", "--upload-pack=touch {pwned}"), BRANCH),
    (("reconcile", "--once", "--branch", "main:refs/heads/x"), BRANCH),
    (("reconcile", "--once", "--branch", "*"), BRANCH),  # a traceback once (fuzzed)
    (("publish", "--once", "--source", "--upload-pack=touch {pwned}"), OPTION),
    (("publish", "--once", "--push", "--receive-pack=touch {pwned}"), OPTION),
    (("publish", "--once", "--report-branch", "-x"), BRANCH),
    (("history", "--report-branch", "a..b"), BRANCH),
])
def test_an_option_for_git_is_a_usage_error(demo_repo: Path, tmp_path: Path,
                                            args: tuple[str, ...], says: str) -> None:
    pwned = tmp_path / "PWNED"
    argv = [a.format(pwned=pwned) for a in args]
    done = runner(*argv, "--repo", str(demo_repo), cwd=demo_repo, cache=tmp_path / "cache")
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("error: --") and says in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1
    assert not pwned.exists()


@pytest.mark.parametrize("args", [
    ("--source", "--upload-pack=touch {pwned}"),
    ("--branch", "--upload-pack=touch {pwned}"),
    ("--branch", "*"),
    ("--push", "--receive-pack=touch {pwned} x:y"),  # ':' passes as a URL
    ("--report-branch", "--exec=touch {pwned}"),
])
def test_up_refuses_an_option_for_git_before_starting_anything(
        demo_repo: Path, tmp_path: Path, args: tuple[str, ...]) -> None:
    pwned = tmp_path / "PWNED"
    code, err, _ = up_fails(demo_repo, *[a.format(pwned=pwned) for a in args],
                            "--api-bind", f"127.0.0.1:{free_port()}",
                            env={"RUNNER_CACHE_DIR": str(tmp_path / "cache")})
    assert code == 2 and err.startswith(f"error: {args[0]} "), err
    assert not pwned.exists()


def test_a_directory_named_like_an_option_is_reached_as_a_path(demo_repo: Path,
                                                               tmp_path: Path) -> None:
    """The way out the message names (./-dir) works, and git gets it as a repository."""
    odd = tmp_path / "-config"
    git(tmp_path, "clone", "-q", str(demo_repo), str(odd))
    state = tmp_path / "state"
    state.mkdir()
    done = runner("reconcile", "--once", "--source", "./-config", "--repo", str(state),
                  cwd=tmp_path, cache=tmp_path / "cache")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("main at ")


def test_git_calls_end_their_options_before_a_source_or_remote(demo_repo: Path,
                                                                tmp_path: Path) -> None:
    """Below the command line too: what reaches fetch, push or verify-commit as a value is
    never read as an option."""
    from runner.publish import Publisher
    from runner.report import Report
    from runner.source import fetch, unsigned

    pwned = tmp_path / "PWNED"
    with pytest.raises(SourceError, match="cannot fetch"):
        fetch(f"--upload-pack=touch {pwned}", "main", tmp_path / "mirror.git")
    assert unsigned(tmp_path / "mirror.git", f"--output={pwned}", tmp_path / "none")
    publisher = Publisher(demo_repo / ".git", "reports", f"--receive-pack=touch {pwned}")
    run = Report("0190000000aa-00000001", "job", "runs/2024/06/01/job/0190000000aa-00000001",
                 {"result.json": b"{}"}, "run\n", b"{}", 1.0)
    try:
        publisher.write([run])
        with pytest.raises(ReportError, match="cannot push"):
            publisher.push()
    finally:
        publisher.close()
    assert not pwned.exists()
