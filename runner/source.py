"""Snapshots of a configuration repository: a directory on disk, or a commit read from git objects.

Both list the configuration files with their git blob ids (the cache key) and check that files
referenced by jobs exist and stay inside the repository. Reading a commit never checks anything out.
`fetch` brings a branch of a remote or local repository into a bare mirror (`git fetch --force`,
so a rewritten branch is followed), never touching a user's worktree; `unsigned` asks git
whether a commit is signed by a trusted key.
"""

from __future__ import annotations

import contextlib
import functools
import os
import stat
import subprocess
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

from runner.config.load import CONFIG_DIRS, TOP_FILES, SourceFile, blob_id
from runner.config.semantic import forbidden_dir, path_error
from runner.errors import Problem, SourceError

_MAX_LINKS = 8


def _constant(data: bytes) -> Callable[[], bytes]:
    return lambda: data


def _config_path(name: str) -> bool:
    return name.endswith((".yaml", ".yml")) and not name.startswith(".")


def _forbidden_link(where: str, resolved: str) -> str:
    return (f"is a symlink leading {where} ({resolved}); files must stay in the repository, "
            "outside .git and .runner")


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
        paths = [f for f in TOP_FILES if (self.root / f).exists()]
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

    def fingerprint(self) -> tuple[tuple[str, int, int, int], ...]:
        """What changes when a configuration file or directory does (name, inode, size,
        modification time of each): equal fingerprints, no need to read the files again."""
        out = []
        for name in (*TOP_FILES, *CONFIG_DIRS):
            top = self.root / name
            try:
                names = [name] + ([f"{name}/{n}" for n in sorted(os.listdir(top))]
                                  if top.is_dir() else [])
            except OSError:
                continue
            for n in names:
                with contextlib.suppress(OSError):
                    st = os.lstat(self.root / n)
                    out.append((n, st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(out)

    def file_error(self, path: str) -> str | None:
        found = self._resolve(path)
        return found if isinstance(found, str) else None

    def _resolve(self, path: str) -> Path | str:
        """The file at `path` with every symlink followed, or why it may not be read: it
        must stay inside the repository, outside .git and .runner, and be a regular file."""
        full = self.root / path
        if not os.path.lexists(full):
            return "does not exist in the repository"
        try:
            real = full.resolve()
        except (RuntimeError, OSError):  # RuntimeError: symlink loop
            return "is a symlink loop"
        if not real.is_relative_to(self.real):
            return "is a symlink leading out of the repository; files must stay inside it"
        rel = real.relative_to(self.real).as_posix()
        if where := forbidden_dir(rel):
            return _forbidden_link(where, rel)
        if not real.is_file():
            return "is not a regular file"
        return real

    def read(self, path: str) -> tuple[bytes, int]:
        """A repository file's bytes and permission bits, checked again now (a run reads it
        long after validation): a SourceError if it may not be read."""
        found = path_error(path) or self._resolve(path)
        if isinstance(found, str):
            raise SourceError(f"repository file {path!r} {found}; it is not read")
        return found.read_bytes(), found.stat().st_mode & 0o777

    @cached_property
    def revision(self) -> str:
        """HEAD's commit id when the directory is a clean git checkout, marked -dirty if not."""
        def git(*args: str) -> str:
            # no optional locks: `git status` would otherwise take index.lock to refresh the
            # index, failing a `git add` or `git commit` the operator runs at that moment
            done = subprocess.run(["git", "--no-optional-locks", "-C", str(self.root), *args],
                                  capture_output=True, text=True, check=False)
            return done.stdout.strip() if done.returncode == 0 else ""

        head = git("rev-parse", "--verify", "-q", "HEAD")
        if not head:
            return "worktree"
        dirty = git("status", "--porcelain", "--", *TOP_FILES, *CONFIG_DIRS, "files")
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

    @cached_property
    def _tree(self) -> dict[str, tuple[int, str, str]]:
        """Every path of the commit (trees too) -> (mode, type, object id): one `git ls-tree`,
        so a lookup costs a dict access however large the repository is."""
        listing = self.repo.git.ls_tree("-r", "-t", "-z", "--full-tree", self.revision)
        tree = {}
        for record in listing.split("\0"):
            if record:
                meta, path = record.split("\t", 1)
                mode, kind, sha = meta.split()
                tree[path] = (int(mode, 8), kind, sha)
        return tree

    @cached_property
    def _children(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for path in self._tree:
            parent, _, name = path.rpartition("/")
            out.setdefault(parent, []).append(name)
        return out

    def _data(self, sha: str) -> bytes:
        return bytes(self.repo.odb.stream(bytes.fromhex(sha)).read())

    def _entry(self, path: str) -> tuple[str, tuple[int, str, str]] | str | None:
        """(resolved path, (mode, type, id)) at `path`, following symlinks inside the tree;
        why not, for a link leading out or into .git or .runner; None if absent."""
        path = os.path.normpath(path)  # ./files/x.sh is files/x.sh, as on disk
        for _ in range(_MAX_LINKS):
            found = self._tree.get(path)
            if found is None:
                return None
            mode, kind, sha = found
            if kind != "blob" or mode != 0o120000:
                return path, found
            target = self._data(sha).decode("utf-8", "replace")
            joined = os.path.normpath(os.path.join(os.path.dirname(path), target))
            if target.startswith("/") or joined.startswith(".."):
                return "is a symlink leading out of the repository; files must stay inside it"
            if where := forbidden_dir(joined):
                return _forbidden_link(where, joined)
            path = joined
        return None

    def files(self) -> list[SourceFile]:
        paths = [f for f in TOP_FILES if self._entry(f) is not None]
        for d in CONFIG_DIRS:
            entry = self._entry(d)
            if isinstance(entry, tuple) and entry[1][1] == "tree":
                paths += sorted(f"{d}/{n}" for n in self._children.get(entry[0], ())
                                if _config_path(n))
        out, refused = [], []
        for p in paths:
            entry = self._entry(p)
            why = self.file_error(p)
            if why or not isinstance(entry, tuple):
                refused.append(Problem(p, 1, 1, f"{p} {why}"))
                continue
            sha = entry[1][2]
            out.append(SourceFile(p, sha, functools.partial(self._data, sha)))
        self.problems = tuple(refused)
        return out

    def blob_info(self, path: str) -> tuple[str, int]:
        """A file's git object id (its content address) and mode, following symlinks."""
        entry = self._entry(path)
        assert isinstance(entry, tuple), path
        mode, _kind, sha = entry[1]
        return sha, 0o755 if mode & 0o111 else 0o644

    def read(self, path: str) -> tuple[bytes, int]:
        """A file's bytes and mode as git stores it (0o755 or 0o644)."""
        entry = self._entry(path)
        assert isinstance(entry, tuple), path
        mode, _kind, sha = entry[1]
        return self._data(sha), 0o755 if mode & 0o111 else 0o644

    def file_error(self, path: str) -> str | None:
        entry = self._entry(path)
        if entry is None:
            return f"does not exist in the repository at {self.revision[:12]}"
        if isinstance(entry, str):
            return entry
        if not isinstance(entry, tuple) or entry[1][1] != "blob":
            return "is not a regular file"
        return None


def fetch(source: str, branch: str, mirror: Path) -> str:
    """The commit id of `branch` at `source`, fetched into the bare `mirror`."""
    import git

    try:
        # HEAD, not the directory: the report publisher may be creating the same mirror
        repo = (git.Repo(mirror) if (mirror / "HEAD").exists()
                else git.Repo.init(mirror, bare=True, mkdir=True))
        repo.git.fetch("--quiet", "--force", "--no-tags", "--end-of-options", source,
                       f"+refs/heads/{branch}:refs/heads/{branch}")
        return str(repo.commit(f"refs/heads/{branch}").hexsha)
    except (git.GitCommandError, git.InvalidGitRepositoryError, ValueError) as e:
        detail = getattr(e, "stderr", "") or str(e)
        detail = " ".join(str(detail).replace("stderr:", "").split())[:300]
        raise SourceError(f"cannot fetch branch {branch!r} from {source}: {detail}") from None


def unsigned(mirror: Path, revision: str, keyring: Path) -> str | None:
    """Why `revision` is not signed by a key of `keyring` (git's own verify-commit), or None.
    `keyring`: an SSH allowed_signers file, or a GnuPG home directory."""
    env = {**os.environ}
    options: list[str] = []
    if keyring.is_dir():
        env["GNUPGHOME"] = str(keyring)
    else:
        options = ["-c", "gpg.format=ssh", "-c", f"gpg.ssh.allowedSignersFile={keyring}"]
    argv = ["git", "-C", str(mirror), *options, "verify-commit", "--end-of-options", revision]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if done.returncode == 0:
        return None
    said = [line for line in done.stderr.strip().splitlines() if line.strip()]
    return (f"head commit {revision[:12]} is not signed by a key of {keyring} "
            f"({said[-1] if said else 'no signature'}); it is not applied")
