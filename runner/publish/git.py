"""The one way runner reaches git for the report branch: the `git` command line, for plumbing
commands and for one long-running `git fast-import`; git's failures become ReportError here.

Not GitPython: fast-import, the writer's path, is a stream protocol GitPython does not wrap,
and its command wrapper starts the same subprocess per call, so it would add a second error
type and environment for no gain."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from runner.errors import ReportError

BUILD = "refs/runner/report-build"  # fast-import's scratch ref; never pushed
ZERO = "0" * 40
BAD_JSON = (ValueError, KeyError, TypeError)  # a file a reader cannot parse counts as none
ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"}


class Git:
    """git commands on one git directory; failures become ReportError."""

    def __init__(self, git_dir: Path) -> None:
        self.dir = git_dir
        self.env = {**os.environ, **ENV}

    def argv(self, *args: str) -> list[str]:
        """The command line of `git args` on this git directory."""
        return ["git", "--git-dir", str(self.dir), *args]

    @property
    def cwd(self) -> Path:
        """Where relative remote paths are resolved from: the worktree, as for `git -C`."""
        return self.dir.parent if self.dir.name == ".git" else self.dir

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Runs `git args`; with `check`, a failure raises ReportError with git's words; git
        that cannot start raises it whatever `check`."""
        try:
            done = subprocess.run(self.argv(*args), capture_output=True, text=True,
                                  env=self.env, check=False, cwd=self.cwd)
        except OSError as e:  # no git, or the directory is gone
            raise ReportError(f"cannot run git in {self.dir}: {e.strerror or e}; install git "
                              "and check the report branch's repository is there") from None
        if check and done.returncode != 0:
            said = " ".join(done.stderr.split())[:300] or f"exit status {done.returncode}"
            raise ReportError(f"git {args[0]} in {self.dir} failed: {said}")
        return done

    def __call__(self, *args: str) -> str:
        return self.run(*args).stdout.strip()

    def sha(self, ref: str) -> str | None:
        """The commit `ref` names, or None."""
        done = self.run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        return done.stdout.strip() or None


def git_dir_of(repo: Path) -> Path | None:
    """The git directory of the repository at `repo` (a worktree or bare), or None."""
    done = subprocess.run(["git", "-C", str(repo), "rev-parse", "--absolute-git-dir"],
                          capture_output=True, text=True, check=False, env={**os.environ, **ENV})
    return Path(done.stdout.strip()) if done.returncode == 0 else None


def current_branch(source: str) -> str:
    """The branch checked out at `source` (a local repository); "main" when there is none."""
    done = subprocess.run(["git", "-C", source, "symbolic-ref", "--short", "HEAD"],
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() or "main"


class FastImport:
    """One `git fast-import` process: commands in, answers (ls, get-mark, cat-blob, progress)
    out on its stdout."""

    def __init__(self, git: Git) -> None:
        self.proc = subprocess.Popen(
            git.argv("fast-import", "--quiet", "--force"), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=git.env, cwd=git.cwd)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin: IO[bytes] = self.proc.stdin
        self.stdout: IO[bytes] = self.proc.stdout
        self.marks = 0
        self.syncs = 0

    def _fail(self, e: Exception) -> ReportError:
        self.proc.kill()
        said = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
        return ReportError(f"git fast-import failed: {' '.join(said.split())[:300] or e}")

    def send(self, data: bytes) -> None:
        """Writes commands (buffered until the next answer is read)."""
        try:
            self.stdin.write(data)
        except OSError as e:
            raise self._fail(e) from None

    def answer(self) -> bytes:
        """The next line fast-import answers with."""
        try:
            self.stdin.flush()
            line = self.stdout.readline()
        except OSError as e:
            raise self._fail(e) from None
        if not line:
            raise self._fail(EOFError("no answer"))
        return line.rstrip(b"\n")

    def ls(self, commit: str, paths: list[str]) -> list[str | None]:
        """The object id at each path of `commit` (None where missing), in one round trip."""
        self.send(b"".join(b"ls %s %s\n" % (commit.encode(), p.encode()) for p in paths))
        out: list[str | None] = []
        for _ in paths:
            line = self.answer()
            out.append(None if line.startswith(b"missing ") else line.split()[2].decode())
        return out

    def cat(self, blob: str) -> bytes:
        """The content of `blob`."""
        self.send(b"cat-blob %s\n" % blob.encode())
        size = int(self.answer().split()[2])
        data = self.stdout.read(size + 1)
        return data[:size]

    def mark(self) -> int:
        """A new mark for the next commit."""
        self.marks += 1
        return self.marks

    def commit(self, mark: int, author: str, committer: str, message: str,
               ops: Iterable[bytes]) -> None:
        """A commit on BUILD with the file commands `ops`."""
        msg = message.encode()
        self.send(b"commit %s\nmark :%d\nauthor %s\ncommitter %s\ndata %d\n%s\n%s\n"
                  % (BUILD.encode(), mark, author.encode(), committer.encode(), len(msg), msg,
                     b"".join(ops)))

    def checkpoint(self, mark: int) -> str:
        """Writes everything so far to the repository; returns the commit id of `mark`."""
        self.syncs += 1
        self.send(b"checkpoint\nprogress sync %d\n" % self.syncs)
        while self.answer() != b"progress sync %d" % self.syncs:
            pass
        self.send(b"get-mark :%d\n" % mark)
        return self.answer().decode()

    def close(self) -> None:
        """Ends the process (it finishes what it was sent)."""
        if self.proc.poll() is None:
            self.stdin.close()
            self.proc.wait(30)


def put(path: str, data: bytes) -> bytes:
    """The fast-import command that writes `data` to `path`."""
    return b"M 100644 inline %s\ndata %d\n%s\n" % (path.encode(), len(data), data)
