"""Writing the report branch: one commit per run and a batch of runs per fast-import
`checkpoint`, idempotent by run id, moved by compare-and-swap, with retention of day
directories; and taking the runs off the store's to-publish feed."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from runner.errors import ReportError
from runner.publish.git import BAD_JSON, BUILD, ZERO, FastImport, Git, put
from runner.report import Report, expired, render, safe
from runner.runs import FINAL, RunRecord
from runner.store import Store, keys


@dataclass(frozen=True)
class Written:
    """What one batch did to the branch."""

    head: str | None      # the branch's tip after the batch
    committed: list[str]  # run ids committed now
    present: list[str]    # run ids that were already on the branch


class Branch:
    """Writes Reports to `refs/heads/BRANCH` of `git_dir`."""

    def __init__(self, git_dir: Path, branch: str = "reports",
                 clock: Callable[[], float] = time.time) -> None:
        self.git = Git(git_dir)
        self.branch, self.ref = branch, f"refs/heads/{branch}"
        self.clock = clock
        self.ident = f"runner <runner@{safe(socket.gethostname())}>"
        self._fi: FastImport | None = None
        self._latest: dict[str, float] = {}  # job -> finished of latest/JOB.json at _at
        self._at: str | None = None
        self._checked: str | None = None  # the UTC day retention last looked at the tip
        self.batches = 0

    @property
    def fi(self) -> FastImport:
        """The fast-import process, started again when it ended."""
        if self._fi is None or self._fi.proc.poll() is not None:
            self._fi = FastImport(self.git)
            self._at = None
        return self._fi

    def close(self) -> None:
        """Ends the fast-import process."""
        if self._fi is not None:
            self._fi.close()
            self._fi = None

    def tip(self) -> str | None:
        """The branch's tip, or None before its first commit."""
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
                    with contextlib.suppress(*BAD_JSON):
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

    def publish(self, store: Store, limit: int = 500, keep_days: int | None = None,
                hold: bool = False) -> Written:
        """One batch: up to `limit` runs off the store's feed onto the branch; `hold` (the
        watching publisher, whose notifier runs beside it): a run whose notifications are
        being sent waits for them, so its commit holds every try."""
        ids = store.to_publish(limit)
        if ids and hold and store.holder(keys.NOTIFIER):  # a notifier is sending: a run waits for
            sending = set(store.to_publish(4 * limit, keys.NOTIFY))  # its tries, in its commit
            ids = [i for i in ids if i not in sending]
        if not ids and (not keep_days or self._checked == self._today()):
            return Written(None, [], [])  # nothing to write: no git process started
        reports, gone = [], []
        for run_id in ids:
            record = store.run(run_id)
            if record is None or record.state not in FINAL or record.job is None:
                # expired from the store, not final, or the final state a run saved into a
                # store wiped meanwhile (no record around it): nothing to write
                gone.append(run_id)
                continue
            reports.append(render(record.to_json(), _downloads(store, record)))
        written = self.write(reports, keep_days)
        store.published([*written.committed, *written.present, *gone])
        return written


class _Moved(ReportError):
    """The branch moved between reading its tip and updating it (caught by write)."""


def _downloads(store: Store, record: RunRecord) -> dict[str, bytes]:
    out = {}
    for t in ((record.result or {}).get("targets") or {}).values():
        for d in t.get("downloads") or ():
            sha = d.get("sha256")
            if sha and sha not in out:  # blob:SHA: a record written before downloads were
                blob = (store.get(keys.download(record.run_id, sha))  # kept per run
                        or store.get(keys.blob(sha)))
                if blob is not None:
                    out[sha] = base64.b64decode(blob["data"])
    return out
