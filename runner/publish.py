"""The report publisher: the one writer of the report branch.

Takes finished runs off the store's to-publish feed (state.py), renders each (report.py) and
commits it to `refs/heads/reports` of the configuration repository's git directory with git
plumbing only — one long-running `git fast-import`, never a worktree or the user's index:

- one commit per run, a batch of runs per `checkpoint`; each batch starts `from` the branch's
  tip and adds its run directories with `M` commands, so only the trees on the path to each new
  run are written: the cost of a commit does not depend on the length of the history;
- idempotent by run id: a run whose directory is already in the tip tree is skipped (fast-import
  `ls`), and runs leave the feed only after the branch moved (`git update-ref NEW OLD`, a
  compare-and-swap), so a publisher killed mid-batch loses nothing and commits nothing twice;
- push: after each batch, when told where (`--push`, or the `--source` the configuration came
  from; a local checkout's branch stays local by default); when the remote's branch moved (another
  publisher, a force-push) fetch it and replay the unpushed commits on top of it (runs are
  disjoint directories, so a replay re-adds the same trees), then push again;
- retention (`reports: {keep_days: N}` in queues.yaml): day directories older than N days leave
  the tip tree in a commit of their own; history keeps them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any

from runner.errors import ReportError, RunnerError, StoreUnavailable, UsageError
from runner.outage import Outage
from runner.report import Report, created_of, day, expired, render, safe
from runner.state import FINAL, Store, download_key, forget_all

BUILD = "refs/runner/report-build"     # fast-import's scratch ref; never pushed
PUSHED = "refs/runner/reports-pushed"  # the last tip the remote accepted
REMOTE = "refs/runner/reports-remote"  # the remote's branch, as last fetched
STATUS = "reports"                     # store key: what `runner status` shows
RENEW = 2.5  # seconds between renewals of an idle publisher's lease (a write each)
LOCK_TTL = 10.0  # seconds; renewed every batch. Two writers would still be safe (CAS, ids)
FORGET_EVERY = 60.0  # seconds between looks for run records past RUNNER_KEEP_RUNS
FORGET_BATCH = 1000
ZERO = "0" * 40
_BAD_JSON = (ValueError, KeyError, TypeError)  # a file a reader cannot parse counts as none
log = logging.getLogger("runner.publish")
_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"}


class Git:
    """git commands on one git directory; failures become ReportError."""

    def __init__(self, git_dir: Path) -> None:
        self.dir = git_dir
        self.env = {**os.environ, **_ENV}

    def argv(self, *args: str) -> list[str]:
        return ["git", "--git-dir", str(self.dir), *args]

    @property
    def cwd(self) -> Path:
        """Where relative remote paths are resolved from: the worktree, as for `git -C`."""
        return self.dir.parent if self.dir.name == ".git" else self.dir

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(self.argv(*args), capture_output=True, text=True, env=self.env,
                              check=False, cwd=self.cwd)
        if check and done.returncode != 0:
            said = " ".join(done.stderr.split())[:300] or f"exit status {done.returncode}"
            raise ReportError(f"git {args[0]} in {self.dir} failed: {said}")
        return done

    def __call__(self, *args: str) -> str:
        return self.run(*args).stdout.strip()

    def sha(self, ref: str) -> str | None:
        done = self.run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        return done.stdout.strip() or None


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
        try:
            self.stdin.write(data)
        except OSError as e:
            raise self._fail(e) from None

    def answer(self) -> bytes:
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
        self.send(b"cat-blob %s\n" % blob.encode())
        size = int(self.answer().split()[2])
        data = self.stdout.read(size + 1)
        return data[:size]

    def mark(self) -> int:
        self.marks += 1
        return self.marks

    def commit(self, mark: int, author: str, committer: str, message: str,
               ops: Iterable[bytes]) -> None:
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
        if self.proc.poll() is None:
            self.stdin.close()
            self.proc.wait(30)


def put(path: str, data: bytes) -> bytes:
    return b"M 100644 inline %s\ndata %d\n%s\n" % (path.encode(), len(data), data)


@dataclass(frozen=True)
class Written:
    head: str | None      # the branch's tip after the batch
    committed: list[str]  # run ids committed now
    present: list[str]    # run ids that were already on the branch


class Publisher:
    """Writes Reports to `refs/heads/BRANCH` of `git_dir` and pushes it to `remote`."""

    def __init__(self, git_dir: Path, branch: str = "reports", remote: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.git = Git(git_dir)
        self.branch, self.ref, self.remote = branch, f"refs/heads/{branch}", remote
        self.clock = clock
        self.ident = f"runner <runner@{safe(socket.gethostname())}>"
        self._fi: FastImport | None = None
        self._latest: dict[str, float] = {}  # job -> finished of latest/JOB.json at _at
        self._at: str | None = None
        self._checked: str | None = None  # the UTC day retention last looked at the tip
        self.batches = 0
        self.replays = 0  # times the unpushed commits were rebuilt on a moved remote branch

    @property
    def fi(self) -> FastImport:
        if self._fi is None or self._fi.proc.poll() is not None:
            self._fi = FastImport(self.git)
            self._at = None
        return self._fi

    def close(self) -> None:
        if self._fi is not None:
            self._fi.close()
            self._fi = None

    def tip(self) -> str | None:
        return self.git.sha(self.ref)

    # -- writing ------------------------------------------------------------------------

    def write(self, reports: list[Report], keep_days: int | None = None) -> Written:
        """Commits the reports not yet on the branch, one commit each, in order; retries
        when the branch moved under it."""
        for _ in range(5):
            tip = self.tip()
            try:
                written = self._write(tip, reports, keep_days)
                if keep_days and written.head and self._checked != self._today():
                    pruned = self._write(written.head, [], keep_days)  # a first branch
                    return Written(pruned.head, written.committed, written.present)
                return written
            except _Moved:
                self._at = None
                continue
        raise ReportError(f"{self.ref} in {self.git.dir} kept moving during 5 attempts to "
                          "commit; is another publisher writing it?")

    def _write(self, tip: str | None, reports: list[Report], keep_days: int | None) -> Written:
        fi = self.fi
        present: set[str] = set()
        if tip is not None and reports:
            found = fi.ls(tip, [r.path for r in reports])
            present = {r.run_id for r, oid in zip(reports, found, strict=True) if oid}
        todo, seen = [], set(present)
        for r in reports:
            if r.run_id not in seen:
                seen.add(r.run_id)
                todo.append(r)
        looked = bool(tip and keep_days and self._checked != self._today())
        prune = self._expired(tip, keep_days)
        if not todo and not prune:
            if looked:
                self._checked = self._today()
            return Written(tip, [], sorted(present))
        if self._at != tip:
            self._latest, self._at = {}, tip
        fi.send(b"reset %s\n%s\n" % (BUILD.encode(), b"from %s\n" % tip.encode() if tip else b""))
        now = int(self.clock())
        committer = f"{self.ident} {now} +0000"
        mark = 0
        if prune and keep_days is not None:
            mark = fi.mark()
            cutoff = prune[-1]
            fi.commit(mark, committer, committer,
                      f"reports: retention removes {len(prune)} day(s) of runs, through "
                      f"{cutoff} (keep_days: {keep_days})\n\nHistory keeps them: git log "
                      f"{self.branch} -- runs/{cutoff}\n",
                      [b"D runs/%s\n" % d.encode() for d in prune])
        for r in todo:
            mark = fi.mark()
            ops = [put(f"{r.path}/{rel}", data) for rel, data in sorted(r.files.items())]
            if r.finished >= self._latest_finished(tip, r.job):
                ops.append(put(f"latest/{safe(r.job)}.json", r.latest))
                self._latest[r.job] = r.finished
            fi.commit(mark, f"{self.ident} {int(r.finished)} +0000", committer, r.message, ops)
        head = fi.checkpoint(mark)
        done = self.git.run("update-ref", "-m", "runner publish", self.ref, head, tip or ZERO,
                            check=False)
        if done.returncode != 0:
            raise _Moved(f"{self.ref} moved while a batch was written")
        self._at = head
        if looked:
            self._checked = self._today()
        self.batches += 1
        if self.batches % 50 == 0:
            self.git.run("gc", "--auto", "--quiet", check=False)
        return Written(head, [r.run_id for r in todo], sorted(present))

    def _latest_finished(self, tip: str | None, job: str) -> float:
        if job not in self._latest:
            self._latest[job] = 0.0
            if tip is not None:
                oid = self.fi.ls(tip, [f"latest/{safe(job)}.json"])[0]
                if oid:
                    with contextlib.suppress(*_BAD_JSON):
                        self._latest[job] = float(json.loads(self.fi.cat(oid))["finished"] or 0)
        return self._latest[job]

    def _expired(self, tip: str | None, keep_days: int | None) -> list[str]:
        """Day directories of `tip` past retention, looked at once per UTC day."""
        if tip is None or not keep_days or self._checked == self._today():
            return []
        today = datetime.fromtimestamp(self.clock(), UTC).date()
        last_year = date.fromordinal(today.toordinal() - keep_days).year
        days = []
        for y in self._dirs(f"{tip}:runs"):
            if int(y) <= last_year:
                for m in self._dirs(f"{tip}:runs/{y}"):
                    days += [f"{y}/{m}/{d}" for d in self._dirs(f"{tip}:runs/{y}/{m}")]
        return expired(days, today, keep_days)

    def _today(self) -> str:
        return datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%d")

    def _dirs(self, treeish: str) -> list[str]:
        done = self.git.run("ls-tree", "-d", "--name-only", treeish, check=False)
        return [n for n in done.stdout.split() if n.isdigit()]

    # -- the store's feed ---------------------------------------------------------------

    def publish(self, store: Store, limit: int = 500, keep_days: int | None = None) -> Written:
        """One batch: up to `limit` runs off the store's feed onto the branch."""
        ids = store.to_publish(limit)
        if not ids and (not keep_days or self._checked == self._today()):
            return Written(None, [], [])  # nothing to write: no git process started
        reports, gone = [], []
        for run_id in ids:
            record = store.run(run_id)
            if record is None or record.get("state") not in FINAL or "job" not in record:
                # expired from the store, not final, or the final state a run saved into a
                # store wiped meanwhile (no record around it): nothing to write
                gone.append(run_id)
                continue
            reports.append(render(record, _downloads(store, record)))
        written = self.write(reports, keep_days)
        store.published([*written.committed, *written.present, *gone])
        return written

    # -- pushing ------------------------------------------------------------------------

    def unpushed(self) -> int:
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
        with contextlib.suppress(*_BAD_JSON):
            finished = float(json.loads(self.fi.cat(m[1].decode()))["finished"] or 0)
            return finished < self._latest_finished(theirs, m[2].decode())
        return False

    def status(self, last_error: str | None) -> dict[str, Any]:
        return {"branch": self.branch, "head": self.tip(), "remote": self.remote,
                "unpushed": self.unpushed(), "last_error": last_error,
                "git_dir": str(self.git.dir), "at": time.time()}


class _Moved(ReportError):
    """The branch moved between reading its tip and updating it (caught by write)."""


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


def _downloads(store: Store, record: dict[str, Any]) -> dict[str, bytes]:
    out = {}
    for t in ((record.get("result") or {}).get("targets") or {}).values():
        for d in t.get("downloads") or ():
            sha = d.get("sha256")
            if sha and sha not in out:  # blob:SHA: a record written before downloads were
                blob = (store.get(download_key(record["run_id"], sha))  # kept per run
                        or store.get(f"blob:{sha}"))
                if blob is not None:
                    out[sha] = base64.b64decode(blob["data"])
    return out


# -- where the branch lives, and reading it back ---------------------------------------------

def locate(repo: Path, state_dir: Path, source: str | None,
           push: str | None = None) -> tuple[Path, str | None]:
    """The git directory the report branch is written to, and where it is pushed (None: it
    stays local): `push` when given (a remote of `repo`, a URL or a path); else, when the
    configuration comes from another `source`, the reconciler's mirror of it and that source;
    else `repo`'s own git directory, and nowhere."""
    here = _git_dir(repo)
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


def _git_dir(repo: Path) -> Path | None:
    done = subprocess.run(["git", "-C", str(repo), "rev-parse", "--absolute-git-dir"],
                          capture_output=True, text=True, check=False, env={**os.environ, **_ENV})
    return Path(done.stdout.strip()) if done.returncode == 0 else None


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


def read_run(git_dir: Path, branch: str, run_id: str) -> dict[str, Any] | None:
    """A run's record from the report branch's tip tree (result.json), or None."""
    when = created_of(run_id)
    if when is None or "/" in run_id:
        return None
    git = Git(git_dir)
    for d in sorted({day(when - 1), day(when + 1)}):
        jobs = git.run("ls-tree", "-d", "--name-only", f"refs/heads/{branch}:runs/{d}",
                       check=False).stdout.split()
        for job in jobs:
            done = git.run("cat-file", "blob",
                           f"refs/heads/{branch}:runs/{d}/{job}/{run_id}/result.json",
                           check=False)
            if done.returncode == 0:
                with contextlib.suppress(*_BAD_JSON):
                    return dict(json.loads(done.stdout))
    return None


def read_latest(git_dir: Path, branch: str, job: str) -> dict[str, Any] | None:
    """The newest run of `job` on the report branch (its full record), or None."""
    git = Git(git_dir)
    done = git.run("cat-file", "blob", f"refs/heads/{branch}:latest/{safe(job)}.json",
                   check=False)
    if done.returncode != 0:
        return None
    with contextlib.suppress(*_BAD_JSON):
        path = json.loads(done.stdout)["path"]
        full = git.run("cat-file", "blob", f"refs/heads/{branch}:{path}/result.json",
                       check=False)
        return dict(json.loads(full.stdout)) if full.returncode == 0 else None
    return None


# -- the loop `runner up` runs -------------------------------------------------------------

def serve(store: Store, publisher: Publisher, stop: threading.Event,
          keep_days: Callable[[], int | None] = lambda: None, batch: int = 500,
          poll: float = 0.25, once: bool = False, keep_runs: float | None = None) -> None:
    """Publishes the feed and pushes until `stop` (or, with `once`, until the feed is empty
    and one push was tried). One publisher per store holds the lock; others stand by.
    A failed push is tried again with exponential backoff (1 s to 60 s); publishing goes on.
    Run records published more than `keep_runs` seconds ago are deleted from the store (the
    branch keeps them), looked for once a minute."""
    owner = uuid.uuid4().hex[:8]
    outage = Outage("publisher", log)
    try:
        while True:
            try:
                return _serve(store, publisher, stop, keep_days, batch, poll, once, owner,
                              keep_runs, outage)
            except StoreUnavailable as e:  # the runs stay on the feed until it is back
                if once:
                    raise
                stop.wait(outage.lost(e))
    finally:
        with contextlib.suppress(StoreUnavailable):
            store.lock("publisher", owner, 0.001)  # let the next publisher in at once


def _serve(store: Store, publisher: Publisher, stop: threading.Event,
           keep_days: Callable[[], int | None], batch: int, poll: float, once: bool,
           owner: str, keep_runs: float | None, outage: Outage) -> None:
    last_error: str | None = None
    backoff, next_push, shown, swept = 0.0, 0.0, 0.0, 0.0
    to_push = publisher.unpushed() > 0
    waited = time.monotonic() + 2 * LOCK_TTL  # a killed publisher's lease runs out
    renewed, idle = -LOCK_TTL, False  # an idle publisher renews its lease every RENEW s
    while not stop.is_set():
        if not (idle and time.monotonic() - renewed < RENEW):
            held, renewed = store.lock("publisher", owner, LOCK_TTL), time.monotonic()
        outage.ok()
        if not held:
            if once and time.monotonic() > waited:
                raise ReportError(f"another publisher holds the lock of this store (for "
                                  f"{2 * LOCK_TTL:.0f}s); is runner up running?")
            stop.wait(0.5)
            continue
        try:
            written = publisher.publish(store, batch, keep_days())
        except ReportError as e:  # git could not write: the runs stay on the feed
            if once:
                raise
            log.warning("%s; trying again in 5s", e)
            store.put(STATUS, {**publisher.status(str(e))})
            stop.wait(5.0)
            continue
        changed = bool(written.committed)
        idle = not (written.committed or written.present)
        if written.committed:
            log.info("report branch %s at %s: %d run(s) committed", publisher.branch,
                     (written.head or "")[:12], len(written.committed))
            to_push = publisher.remote is not None
        more = len(written.committed) + len(written.present) >= batch
        if to_push and not more and time.monotonic() >= next_push:
            changed = True
            try:
                publisher.push()
                last_error, backoff, to_push = None, 0.0, False
            except ReportError as e:
                last_error = str(e)
                backoff = min(60.0, max(1.0, backoff * 2))
                next_push = time.monotonic() + backoff
                log.warning("%s; next push in %.0fs", e, backoff)
        if changed or time.monotonic() - shown > 5:
            store.put(STATUS, publisher.status(last_error))
            shown = time.monotonic()
        if keep_runs and time.monotonic() - swept > FORGET_EVERY:
            swept = time.monotonic()
            try:
                n = forget_all(store, time.time() - keep_runs, FORGET_BATCH, stop.is_set)
            except (OSError, RunnerError) as e:  # tried again in a minute
                log.warning("could not delete old run records: %s", e)
            else:
                if n:
                    log.info("%d published run record(s) older than %.0fs deleted from the "
                             "store", n, keep_runs)
        if once and not more:
            if last_error:
                raise ReportError(last_error)
            return
        if not more:
            stop.wait(poll)


def keep_days_of(config: Callable[[], Any]) -> Callable[[], int | None]:
    """reports.keep_days of the configuration the system runs (None when unreadable)."""
    def read() -> int | None:
        try:
            return config().reports.keep_days  # type: ignore[no-any-return]
        except RunnerError:
            return None
    return read
