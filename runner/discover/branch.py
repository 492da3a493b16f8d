"""A discovery's commit, on a new branch of the configuration repository, made with git
plumbing through a private index: the worktree, the index and every other branch stay as they
are. git's failures become SourceError (exit 2) here."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from runner.errors import SourceError

ZERO = "0" * 40
_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"}
_IDENTITY = {"GIT_AUTHOR_NAME": "runner discover", "GIT_AUTHOR_EMAIL": "runner@localhost",
             "GIT_COMMITTER_NAME": "runner discover", "GIT_COMMITTER_EMAIL": "runner@localhost"}


def _git(repo: Path, *args: str, env: Mapping[str, str] | None = None, stdin: str = "",
         check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], input=stdin, text=True,
                              capture_output=True, env={**os.environ, **_ENV, **(env or {})})
    except OSError as e:
        raise SourceError(f"cannot run git: {e.strerror or e}; install git") from None
    if check and done.returncode:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise SourceError(f"git {args[0]} failed in {repo}: {last}")
    return done


def head(repo: Path) -> str:
    """The commit the discovery branch starts from: the repository's HEAD."""
    done = _git(repo, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
    if done.returncode:
        raise SourceError(f"{repo} is not a git repository with a commit; runner discover "
                          "writes a branch of the configuration repository (pass it with "
                          "--repo DIR)")
    return done.stdout.strip()


def exists(repo: Path, branch: str) -> bool:
    """Is there a local branch so named?"""
    return not _git(repo, "show-ref", "--verify", "--quiet", f"refs/heads/{branch}",
                    check=False).returncode


def free_name(repo: Path, today: str) -> str:
    """discovery/DATE, or discovery/DATE-N with the first N that names no branch yet."""
    name, n = f"discovery/{today}", 1
    while exists(repo, name):
        n += 1
        name = f"discovery/{today}-{n}"
    return name


def commit(repo: Path, base: str, files: Mapping[str, str], message: str) -> str:
    """A commit of `files` (path -> text) over `base`, on no branch yet (see create)."""
    identity = {} if _git(repo, "config", "user.email", check=False).stdout.strip() else _IDENTITY
    with tempfile.TemporaryDirectory(prefix="runner-discover-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index"), **identity}
        _git(repo, "read-tree", base, env=env)
        for path, text in files.items():
            blob = _git(repo, "hash-object", "-w", "--stdin", stdin=text).stdout.strip()
            _git(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
        tree = _git(repo, "write-tree", env=env).stdout.strip()
        return _git(repo, "commit-tree", tree, "-p", base, "-F", "-", stdin=message,
                    env=env).stdout.strip()


def create(repo: Path, branch: str, made: str) -> None:
    """The new branch `branch` at commit `made`; refused if it exists by now."""
    _git(repo, "update-ref", "-m", "runner discover", f"refs/heads/{branch}", made, ZERO)


def push(repo: Path, branch: str) -> str:
    """Pushes the branch to git's remote.pushDefault, else origin; returns the remote."""
    remote = _git(repo, "config", "remote.pushDefault", check=False).stdout.strip() or "origin"
    if _git(repo, "remote", "get-url", "--", remote, check=False).returncode:
        raise SourceError(f"--push: {repo} has no remote {remote!r}; add one (git remote add "
                          f"origin URL) or set remote.pushDefault; branch {branch} is made "
                          "locally")
    _git(repo, "push", "--", remote, f"refs/heads/{branch}:refs/heads/{branch}")
    return remote


def proposed(repo: Path, path: str, lines: Sequence[str]) -> str | None:
    """A discovery/* branch whose file `path` holds every one of `lines` already, or None."""
    refs = _git(repo, "for-each-ref", "--format=%(refname)", "refs/heads/discovery/").stdout
    for ref in refs.split():
        shown = _git(repo, "show", f"{ref}:{path}", check=False)
        if not shown.returncode and set(lines) <= set(shown.stdout.splitlines()):
            return ref.removeprefix("refs/heads/")
    return None
