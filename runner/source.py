"""Snapshots of a configuration repository: a directory on disk, or a commit read from git objects.

Both list the configuration files with their git blob ids (the cache key) and check that files
referenced by jobs exist and stay inside the repository. Reading a commit never checks anything out.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

from runner.config.load import CONFIG_DIRS, QUEUES_FILE, SourceFile, blob_id
from runner.errors import Problem, SourceError

_MAX_LINKS = 8


def _constant(data: bytes) -> Callable[[], bytes]:
    return lambda: data


def _reader(blob: Any) -> Callable[[], bytes]:
    return lambda: bytes(blob.data_stream.read())


def _config_path(name: str) -> bool:
    return name.endswith((".yaml", ".yml")) and not name.startswith(".")


class DirSnapshot:
    """The configuration as it is in a directory (a checkout, with uncommitted changes)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise SourceError(f"{self.root}: no such directory; pass the configuration "
                              "repository with --repo DIR")
        self.real = self.root.resolve()
        self.problems: tuple[Problem, ...] = ()

    def files(self) -> list[SourceFile]:
        paths = [QUEUES_FILE] if (self.root / QUEUES_FILE).exists() else []
        for d in CONFIG_DIRS:
            if (self.root / d).is_dir():
                paths += sorted(f"{d}/{n}" for n in os.listdir(self.root / d) if _config_path(n))
        if not paths:
            raise SourceError(f"{self.root}: no runner configuration here (expected queues.yaml, "
                              "targets.d/, jobs.d/, schedules.d/)")
        out, refused = [], []
        root = str(self.root)
        linked = {d for d in CONFIG_DIRS if os.path.islink(os.path.join(root, d))}
        for p in paths:
            full = os.path.join(root, p)
            # a regular file, not a symlink, in a directory that is no symlink, stays inside
            plain = stat.S_ISREG(os.lstat(full).st_mode) and p.split("/")[0] not in linked
            why = None if plain else self.file_error(p)
            if why:
                refused.append(Problem(p, 1, 1, f"{p} {why}"))
                continue
            with open(full, "rb") as f:
                data = f.read()
            out.append(SourceFile(p, blob_id(data), _constant(data)))
        self.problems = tuple(refused)
        return out

    def file_error(self, path: str) -> str | None:
        full = self.root / path
        if not os.path.lexists(full):
            return "does not exist in the repository"
        try:
            real = full.resolve()
        except (RuntimeError, OSError):  # RuntimeError: symlink loop
            return "is a symlink loop"
        if not real.is_relative_to(self.real):
            return "is a symlink leading out of the repository; files must stay inside it"
        if not real.is_file():
            return "is not a regular file"
        return None

    def read(self, path: str) -> tuple[bytes, int]:
        """A repository file's bytes and permission bits (a file_error-checked path)."""
        full = self.root / path
        return full.read_bytes(), full.stat().st_mode & 0o777

    @cached_property
    def revision(self) -> str:
        """HEAD's commit id when the directory is a clean git checkout, marked -dirty if not."""
        def git(*args: str) -> str:
            done = subprocess.run(["git", "-C", str(self.root), *args], capture_output=True,
                                  text=True, check=False)
            return done.stdout.strip() if done.returncode == 0 else ""

        head = git("rev-parse", "--verify", "-q", "HEAD")
        if not head:
            return "worktree"
        dirty = git("status", "--porcelain", "--", QUEUES_FILE, *CONFIG_DIRS, "files")
        return f"{head}-dirty" if dirty else head


class GitSnapshot:
    """The configuration at one commit, read from git objects (no checkout, no index change)."""

    def __init__(self, repo_dir: str | os.PathLike[str], rev: str) -> None:
        import git

        try:
            self.repo = git.Repo(repo_dir, search_parent_directories=False)
        except (git.NoSuchPathError, git.InvalidGitRepositoryError) as e:
            raise SourceError(f"{repo_dir}: not a git repository ({type(e).__name__})") from None
        try:
            self.commit = self.repo.commit(rev)
        except (git.BadName, ValueError, git.GitCommandError):
            raise SourceError(f"{rev!r} is not a revision of {repo_dir} (try a branch, tag or "
                              "commit id, e.g. main or HEAD~1)") from None
        self.revision = self.commit.hexsha
        self.problems: tuple[Problem, ...] = ()

    def _entry(self, path: str) -> Any:
        """The blob at `path`, following symlinks inside the tree; None if absent."""
        tree = self.commit.tree
        for _ in range(_MAX_LINKS):
            try:
                blob = tree[path]
            except KeyError:
                return None
            if blob.type != "blob" or blob.mode != 0o120000:
                return blob
            target = blob.data_stream.read().decode("utf-8", "replace")
            joined = os.path.normpath(os.path.join(os.path.dirname(path), target))
            if target.startswith("/") or joined.startswith(".."):
                return "outside"
            path = joined
        return None

    def files(self) -> list[SourceFile]:
        paths = [QUEUES_FILE] if self._entry(QUEUES_FILE) is not None else []
        for d in CONFIG_DIRS:
            entry = self._entry(d)
            if entry is not None and entry != "outside" and entry.type == "tree":
                paths += sorted(f"{d}/{b.name}" for b in entry if _config_path(b.name))
        out, refused = [], []
        for p in paths:
            why = self.file_error(p)
            if why:
                refused.append(Problem(p, 1, 1, f"{p} {why}"))
                continue
            blob = self._entry(p)
            out.append(SourceFile(p, blob.hexsha, _reader(blob)))
        self.problems = tuple(refused)
        return out

    def read(self, path: str) -> tuple[bytes, int]:
        """A file's bytes and mode as git stores it (0o755 or 0o644)."""
        blob = self._entry(path)
        return bytes(blob.data_stream.read()), 0o755 if blob.mode & 0o111 else 0o644

    def file_error(self, path: str) -> str | None:
        entry = self._entry(path)
        if entry is None:
            return f"does not exist in the repository at {self.revision[:12]}"
        if entry == "outside":
            return "is a symlink leading out of the repository; files must stay inside it"
        if entry.type != "blob":
            return "is not a regular file"
        return None
