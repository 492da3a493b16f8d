"""Pushing the report branch where told: when the remote's branch moved (another publisher, a
force-push), fetch it and replay the unpushed commits on top of it (runs are disjoint
directories, so a replay re-adds the same trees), then push again."""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable
from pathlib import Path

from runner.errors import ReportError
from runner.publish.branch import Branch
from runner.publish.git import BAD_JSON, BUILD
from runner.store.entries import PublisherStatus

PUSHED = "refs/runner/reports-pushed"  # the last tip the remote accepted
REMOTE = "refs/runner/reports-remote"  # the remote's branch, as last fetched


class Publisher(Branch):
    """Writes Reports to `refs/heads/BRANCH` of `git_dir` and pushes it to `remote`."""

    def __init__(self, git_dir: Path, branch: str = "reports", remote: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(git_dir, branch, clock)
        self.remote = remote
        self.replays = 0  # times the unpushed commits were rebuilt on a moved remote branch

    def unpushed(self) -> int:
        """Commits of the branch the remote has not accepted yet (0 when it is not pushed)."""
        if self.remote is None:
            return 0
        head = self.tip()
        if head is None:
            return 0
        base = self.git.sha(PUSHED)
        done = self.git.run("rev-list", "--count", head, *([f"^{base}"] if base else []),
                            check=False)
        return int(done.stdout.strip() or 0)

    def push(self) -> str | None:
        """Pushes the branch to the remote; when the remote's branch moved, fetches it and
        replays the unpushed commits on top first. Returns the pushed tip."""
        if self.remote is None or self.tip() is None:
            return None
        for _ in range(5):
            head = self.tip()
            assert head is not None
            done = self.git.run("push", "--quiet", "--porcelain", "--end-of-options", self.remote,
                                f"{self.ref}:{self.ref}", check=False)
            if done.returncode == 0:
                self.git("update-ref", PUSHED, head)
                return head
            fetched = self.git.run("fetch", "--quiet", "--no-tags", "--end-of-options", self.remote,
                                   f"+{self.ref}:{REMOTE}", check=False)
            theirs = self.git.sha(REMOTE) if fetched.returncode == 0 else None
            if theirs is None or self.git.run("merge-base", "--is-ancestor", theirs, head,
                                              check=False).returncode == 0:
                said = " ".join((done.stdout + done.stderr).split())[:300]
                raise ReportError(f"cannot push {self.ref} to {self.remote}: {said}")
            self._replay(theirs, head)
        raise ReportError(f"{self.ref} at {self.remote} kept moving during 5 pushes")

    def _replay(self, theirs: str, head: str) -> None:
        """Rebuilds the local commits the remote lacks on top of `theirs`."""
        base = self.git.sha(PUSHED)
        if base is None or self.git.run("merge-base", "--is-ancestor", base, head,
                                         check=False).returncode != 0:
            base = self.git.run("merge-base", theirs, head, check=False).stdout.strip() or None
        span = [head, *([f"^{base}"] if base else [])]
        raw = self.git("log", "--reverse", "--root", "-r", "--raw", "--no-abbrev",
                       "--no-renames", "--format=%x01%H%x02%an <%ae> %at +0000%x02%B%x03",
                       *span)
        fi = self.fi
        self._latest, self._at = {}, theirs
        fi.send(b"reset %s\nfrom %s\n\n" % (BUILD.encode(), theirs.encode()))
        mark = 0
        committer = f"{self.ident} {int(self.clock())} +0000"
        for chunk in raw.split("\x01")[1:]:
            header, _, changes = chunk.partition("\x03")
            _sha, author, message = header.split("\x02", 2)
            ops, runs = _replay_ops(changes)
            if runs and all(fi.ls(theirs, [p])[0] for p in runs):
                continue  # the remote has these runs already
            ops = [op for op in ops if not self._older_latest(op, theirs)]
            mark = fi.mark()
            fi.commit(mark, author, committer, message.rstrip("\n") + "\n", ops)
        new = fi.checkpoint(mark) if mark else theirs
        self.git("update-ref", "-m", "runner publish: rebuilt on the remote's branch",
                 self.ref, new, head)
        self._at = None
        self.replays += 1

    def _older_latest(self, op: bytes, theirs: str) -> bool:
        """A replayed latest/JOB.json that is older than the one on the remote's branch."""
        m = re.match(rb"M \d+ ([0-9a-f]{40}) latest/(.+)\.json\n$", op)
        if not m:
            return False
        with contextlib.suppress(*BAD_JSON):
            finished = float(json.loads(self.fi.cat(m[1].decode()))["finished"] or 0)
            return finished < self._latest_finished(theirs, m[2].decode())
        return False

    def status(self, last_error: str | None) -> PublisherStatus:
        """What `runner status` shows of the publisher."""
        return PublisherStatus(self.branch, self.tip(), self.remote, self.unpushed(),
                               last_error, str(self.git.dir), time.time())


def _replay_ops(changes: str) -> tuple[list[bytes], list[str]]:
    """fast-import commands for one commit's raw diff, and the run directories it adds."""
    ops, runs = [], []
    for line in changes.strip().splitlines():
        meta, _, path = line.partition("\t")
        fields = meta.split()
        if len(fields) < 5:
            continue
        mode, oid, status = fields[1], fields[3], fields[4]
        if status == "D":
            ops.append(b"D %s\n" % path.encode())
        else:
            ops.append(b"M %s %s %s\n" % (mode.encode(), oid.encode(), path.encode()))
        parts = path.split("/")
        if parts[0] == "runs" and len(parts) > 6 and status != "D":
            runs.append("/".join(parts[:6]))
    return ops, sorted(set(runs))
