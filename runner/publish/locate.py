"""Where the report branch is written, and where it is pushed."""

from __future__ import annotations

from pathlib import Path

from runner.errors import ReportError, UsageError
from runner.publish.git import Git, git_dir_of


def locate(repo: Path, state_dir: Path, source: str | None,
           push: str | None = None) -> tuple[Path, str | None]:
    """The git directory the report branch is written to, and where it is pushed (None: it
    stays local): `push` when given (a remote of `repo`, a URL or a path); else, when the
    configuration comes from another `source`, the reconciler's mirror of it and that source;
    else `repo`'s own git directory, and nowhere."""
    here = git_dir_of(repo)
    if source and not _same(source, repo):
        mirror = state_dir / "source.git"
        if not (mirror / "HEAD").exists():  # before the reconciler's first fetch made it
            mirror.mkdir(parents=True, exist_ok=True)
            Git(mirror).run("init", "--quiet", "--bare", "--", str(mirror))
        local = Path(source)
        return mirror, (_push_target(push, repo, here, by_url=True) if push
                        else str(local.resolve()) if local.exists() else source)
    if here is None:
        raise ReportError(f"{repo} is not a git repository, so there is no report branch to "
                          "write; git init it, or pass --source")
    return here, _push_target(push, repo, here, by_url=False) if push else None


def _push_target(push: str, repo: Path, git_dir: Path | None, by_url: bool) -> str:
    """`push` as `git push` takes it: a remote of `repo` (its URL when pushed from another
    git directory), a URL, or an existing path (absolute); anything else is a usage error."""
    if git_dir is not None:
        url = Git(git_dir).run("remote", "get-url", "--end-of-options", push, check=False)
        if url.returncode == 0 and not by_url:
            return push
        if url.returncode == 0:  # a relative path is relative to repo's worktree
            there = url.stdout.strip()
            return str((repo / there).resolve()) if (repo / there).exists() else there
    if Path(push).exists():
        return str(Path(push).resolve())
    if ":" in push:  # https://..., ssh://..., user@host:path
        return push
    raise UsageError(f"--push {push!r} is neither a remote of {repo} nor a URL or an existing "
                     "path; pass a remote name (git remote -v lists them) or a URL")


def _same(source: str, repo: Path) -> bool:
    try:
        return Path(source).resolve() == repo.resolve()
    except OSError:
        return False
