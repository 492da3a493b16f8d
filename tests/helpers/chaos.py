"""The accounting of issue 17's "Done when", shared by the chaos tests: every firing of a
schedule in a window is run or recorded MISSED exactly once, no firing is run twice, no
command completes twice, and no run is left unfinished.

A job made by `slow_job` appends `start TOKEN` and, a second later, `done TOKEN` to a marks
file and prints TOKEN (nanoseconds since the epoch, then its shell's pid): its run's stdout
names the one execution it stands for, so a `done` line with no SUCCESS run holding its token
is a command that completed outside its run (an orphan, or a second execution)."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from runner.config.model import Schedule
from runner.desired import next_fires
from runner.errors import RunnerError
from runner.runs import ACTIVE, RunRecord
from runner.store.redis import RedisStore
from tests.helpers.procs import cmdline, descendants

FAST = Schedule(name="fast", job="quick", every=2, overlap="allow")  # FAST_FILES' schedule
FAST_FILES = {  # an every-2s schedule of a quick job, and none other
    "schedules.d/fast.yaml": "schedules:\n  fast: {job: quick, every: 2s, overlap: allow}\n",
    "jobs.d/quick.yaml": "jobs:\n  quick: {queue: system, targets: [localhost], "
                         "steps: [{command: echo quick}]}\n",
    "schedules.d/ops.yaml": None}


def slow_job(marks: Path, attempts: int = 0) -> tuple[dict[str, str | None], str]:
    """FAST_FILES with `quick` taking about a second (and `retries: {attempts: N}`), and
    the marker its command line holds (unique: no other test's command has it)."""
    marker = f"chaos-{uuid.uuid4().hex[:12]}"
    command = (f": {marker}; t=$(date +%s%N)-$$; echo start $t >> {marks}; sleep 1; "
               f"echo done $t >> {marks}; echo $t")
    retries = f"retries: {{attempts: {attempts}}}, " if attempts else ""
    return {"schedules.d/fast.yaml": "schedules:\n  fast: {job: quick, every: 2s, "
                                     "overlap: allow}\n",
            "jobs.d/quick.yaml": f"jobs:\n  quick: {{queue: system, targets: [localhost], "
                                 f"{retries}steps: [{{command: '{command}'}}]}}\n",
            "schedules.d/ops.yaml": None}, marker


def pids(root: int, marker: str) -> list[int]:
    """The shells running the job's command now, below the known process `root` (a worker
    starts them: their pids are not ours to know, their marker is)."""
    return sorted(p for p in descendants(root) if cmdline(p).startswith(f"/bin/sh -c : {marker}"))


@dataclass(frozen=True)
class Account:
    expected: int          # firings of the schedule in the window
    run: int               # ... with a run (its first attempt)
    missed: int            # ... recorded MISSED (or SKIPPED)
    doubled: list[str]     # firings run or recorded more than once
    lost: list[str]        # firings neither run nor recorded
    retries: int           # runs retrying another
    unfinished: list[str]  # run ids still PENDING/RECEIVED/STARTED
    orphans: list[str]     # commands completed with no SUCCESS run holding their token
    twice: list[str]       # tokens completed (or held by SUCCESS runs) more than once
    killed: int            # commands started and never completed (killed with their run)

    def ok(self) -> bool:
        return not (self.doubled or self.lost or self.unfinished or self.orphans or self.twice)

    def __str__(self) -> str:
        return (f"firings expected {self.expected}: run {self.run}, MISSED {self.missed}, "
                f"doubled {len(self.doubled)}, lost {len(self.lost)}; retries {self.retries}, "
                f"unfinished {len(self.unfinished)}, commands killed {self.killed}, orphaned "
                f"{len(self.orphans)}, completed twice {len(self.twice)}")


def covered(record: RunRecord) -> list[datetime]:
    """The firings a record accounts for: its scheduled_for, or a MISSED record's range."""
    if record.state == "MISSED" and record.missed_from:
        at, last = (datetime.fromisoformat(str(t)) for t in (record.missed_from,
                                                              record.missed_to))
        out = [at]
        while out[-1] < last:
            out += next_fires(FAST, out[-1], 1)
        assert len(out) == record.missed_count, record
        return out
    return [datetime.fromisoformat(str(record.scheduled_for))]


def account(store: RedisStore, start: datetime, end: datetime, marks: Path | None,
            since: float = 0.0) -> Account:
    """The firings of FAST in [start, end] against the store's records; the marks file's
    tokens of commands started at or after `since` (epoch seconds) against SUCCESS runs."""
    want = [start, *next_fires(FAST, start, 10_000)]
    want = [w for w in want if w <= end]
    records = [r for r in store.runs(job="quick", limit=10_000) if r.schedule == "fast"]
    ran, recorded = Counter[datetime](), Counter[datetime]()
    unfinished, retries, tokens = [], 0, []
    for summary in records:
        r = store.run(summary.run_id) or summary  # the whole record: range, result
        if r.retry_of:
            retries += 1
        elif r.state in ("MISSED", "SKIPPED"):
            recorded.update(covered(r))
        elif r.scheduled_for:
            ran.update(covered(r))
        if r.state in ACTIVE:
            unfinished.append(r.run_id)
        if r.state == "SUCCESS" and r.result:
            tokens.append(str(r.result["targets"]["localhost"]["stdout"]).strip())
    lines = [line.split() for line in marks.read_text().splitlines()] if marks else []
    recent = {t for kind, t in lines if kind == "start" and int(t.split("-")[0]) >= since * 1e9}
    done = Counter(t for kind, t in lines if kind == "done" and t in recent)
    held = Counter(t for t in tokens if t in recent)
    both = ran + recorded
    return Account(
        expected=len(want), run=sum(ran[w] for w in want), missed=sum(recorded[w] for w in want),
        doubled=[w.isoformat() for w in want if both[w] > 1],
        lost=[w.isoformat() for w in want if both[w] == 0], retries=retries,
        unfinished=unfinished, orphans=sorted(set(done) - set(held)),
        twice=sorted(t for t in done | held if done[t] > 1 or held[t] > 1),
        killed=len(recent - set(done)))


def settled(url: str, start: datetime, end: datetime, marks: Path | None,
            since: float = 0.0, deadline: float = 60.0) -> Account:
    """Polls the account until it holds (every firing accounted once, every run ended);
    an AssertionError with the counts after `deadline` seconds."""
    stop, last = time.monotonic() + deadline, None
    while time.monotonic() < stop:
        try:
            last = account(RedisStore(url), start, end, marks, since)
        except RunnerError:  # Redis still coming back
            last = None
        if last is not None and last.ok():
            return last
        time.sleep(0.2)  # polling with a deadline
    raise AssertionError(f"not settled {deadline:.0f}s later: {last!r}")


def first_firing(url: str) -> datetime:
    """The earliest firing of FAST the store holds a run of: the window starts there (beat
    owes no firing from before it first saw the schedule)."""
    runs = RedisStore(url).runs(job="quick", limit=10_000)
    return min(datetime.fromisoformat(str(r.scheduled_for)) for r in runs if r.scheduled_for)


def window_end(now: datetime) -> datetime:
    """The last firing of FAST at least 3 s before `now` (beat has had time to handle it)."""
    return [f for f in next_fires(FAST, now - timedelta(seconds=7), 4)
            if f <= now - timedelta(seconds=3)][-1]
