"""`make bench`, part 5: committing run results to the report branch.

    python bench/report_branch.py [--history 10000] [--results 10000] [--naive 300]

A report branch that already holds --history runs (10 jobs, 2 targets each, one run a minute,
so about two weeks of day directories) receives --results more, in batches of 500:

- runner publisher: report.render + Publisher.write (one fast-import, a commit per run, a
  checkpoint and a compare-and-swap of the ref per batch), from records in memory;
- the same from the store's feed (FileStore: records read from disk, feed entries removed);
- floor: `git fast-import` alone reading a prepared stream that writes the same trees and
  commits (no rendering, no round trips, one checkpoint);
- naive GitPython: write the files into a worktree, index.add, index.commit — timed on
  --naive results only, on a new repository (with the 10,000-run history checked out its
  index has ~100,000 entries and one commit took about 7 s here).

Goal: >= 500 results/s, and the time per commit does not grow with history (ms/commit of the
first and the last 1,000 results are printed side by side).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.publish import BUILD, Publisher, put  # noqa: E402
from runner.report import Report, render  # noqa: E402
from runner.runs import RunRecord, new_run_id  # noqa: E402
from runner.store.files import FileStore  # noqa: E402

BATCH = 500
GIT = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid",
       "-c", "init.defaultBranch=main"]


def records(n: int, start: float) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        when = start + 60 * i
        targets = {f"web-{k}": {"status": "success", "rc": 0, "stdout": f"up {i} days\n",
                                "stderr": "", "duration": 0.2, "error": None, "downloads": []}
                   for k in (1, 2)}
        out.append({"run_id": new_run_id(when), "job": f"job-{i % 10}", "state": "SUCCESS",
                    "created": when, "started": when, "finished": when + 1, "trigger": "cli",
                    "revision": "c" * 40, "result": {"status": "success", "targets": targets}})
    return out


def publish(repo: Path, recs: list[dict[str, Any]]) -> list[float]:
    """Seconds per batch."""
    pub = Publisher(repo)
    times = []
    for i in range(0, len(recs), BATCH):
        t0 = time.perf_counter()
        written = pub.write([render(r) for r in recs[i:i + BATCH]])
        times.append(time.perf_counter() - t0)
        assert len(written.committed) == len(recs[i:i + BATCH])
    pub.close()
    return times


def floor(repo: Path, reports: list[Report]) -> float:
    tip = subprocess.run(["git", "-C", str(repo), "rev-parse", "refs/heads/reports"],
                         capture_output=True, text=True, check=True).stdout.strip()
    stream = bytearray(b"reset %s\nfrom %s\n\n" % (BUILD.encode(), tip.encode()))
    who = b"runner <runner@bench> 1700000000 +0000"
    for n, r in enumerate(reports, 1):
        msg = r.message.encode()
        stream += b"commit %s\nmark :%d\nauthor %s\ncommitter %s\ndata %d\n%s\n" % (
            BUILD.encode(), n, who, who, len(msg), msg)
        stream += b"".join(put(f"{r.path}/{k}", v) for k, v in sorted(r.files.items()))
        stream += put(f"latest/{r.job}.json", r.latest) + b"\n"
    path = repo.parent / "stream.fi"
    path.write_bytes(bytes(stream))
    t0 = time.perf_counter()
    with open(path, "rb") as f:
        subprocess.run(["git", "-C", str(repo), "fast-import", "--quiet", "--force"], stdin=f,
                       check=True)
    return time.perf_counter() - t0


def naive(work: Path, reports: list[Report]) -> float:
    """On a new repository: with the 10,000-run history checked out, GitPython's index of
    ~100,000 entries took about 7 s per commit here, which no bench run can afford."""
    import git

    subprocess.run([*GIT, "init", "-q", str(work)], check=True)
    r = git.Repo(work)
    r.index.entries  # noqa: B018 - read the index once before timing, as a long-lived process would
    t0 = time.perf_counter()
    for rep in reports:
        paths = []
        for rel, data in {**{f"{rep.path}/{k}": v for k, v in rep.files.items()},
                          f"latest/{rep.job}.json": rep.latest}.items():
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            (work / rel).write_bytes(data)
            paths.append(rel)
        r.index.add(paths)
        r.index.commit(rep.message)
    return time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--history", type=int, default=10_000)
    p.add_argument("--results", type=int, default=10_000)
    p.add_argument("--naive", type=int, default=300)
    a = p.parse_args()
    start = time.time() - 60 * (a.history + a.results)
    old, new = records(a.history, start), records(a.results, start + 60 * a.history)
    with tempfile.TemporaryDirectory(prefix="runner-bench-report-") as d:
        tmp = Path(d)
        repo = tmp / "repo.git"
        subprocess.run([*GIT, "init", "-q", "--bare", str(repo)], check=True)
        t0 = time.perf_counter()
        publish(repo, old)
        fill = time.perf_counter() - t0
        for name in ("floor.git", "feed.git"):
            shutil.copytree(repo, tmp / name)
        times = publish(repo, new)
        ours = sum(times)
        reports = [render(r) for r in new]
        fl = floor(tmp / "floor.git", reports)
        store = FileStore(tmp / "state")
        for r in new:
            store.save_run(RunRecord.from_json(r))
        pub = Publisher(tmp / "feed.git")
        t0 = time.perf_counter()
        while pub.publish(store, BATCH).committed:
            pass
        feed = time.perf_counter() - t0
        pub.close()
        slow = naive(tmp / "work", [render(r) for r in records(a.naive, time.time())])
    per = BATCH / 1000
    head, tail = times[:max(1, int(2 / per))], times[-max(1, int(2 / per)):]
    rows = [("git fast-import (floor)", a.results / fl),
            ("runner publisher (in memory)", a.results / ours),
            ("runner publisher (FileStore feed)", a.results / feed),
            (f"naive GitPython ({a.naive}, empty history)", a.naive / slow)]
    floor_rate = a.results / fl
    print(f"\n{'name':<36} {'results/s':>10} {'x floor':>8}")
    for name, rate in rows:
        print(f"{name:<36} {rate:>10.0f} {rate / floor_rate:>8.2f}")
    first = 1000 * sum(head) / (len(head) * BATCH)
    last = 1000 * sum(tail) / (len(tail) * BATCH)
    print(f"\nms/commit, first 1,000 of {a.results:,}: {first:.2f}   last 1,000: {last:.2f}   "
          f"(history {a.history:,} runs before, filled at {a.history / fill:.0f}/s)")
    ok = a.results / ours >= 500 and last <= 1.5 * first
    print(f"goal >= 500 results/s and flat ms/commit: {'PASS' if ok else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
