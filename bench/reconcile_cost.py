"""`make bench`, part 4: what a reconcile costs on the generated 10,000-job repository.

    python bench/reconcile_cost.py [--reps 5]

In one process, with the store on files (the embedded default): a cold reconcile, a no-op
(nothing new on the branch), and a one-file commit (one job's description edited), each
timed whole and without its fetch. Goals: one-file commit <= 0.100 s from fetch done to
applied; no-op <= 0.020 s.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import run as validate_bench  # noqa: E402  (bench/run.py: the generated repository)

from runner.config.load import FileResult  # noqa: E402
from runner.reconcile import reconcile  # noqa: E402
from runner.source import fetch  # noqa: E402
from runner.store.files import FileStore  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=5)
    a = p.parse_args()
    cached, _ = validate_bench.cached_repo(validate_bench.GEN_PARAMS)
    git = validate_bench.GIT
    with tempfile.TemporaryDirectory(prefix="runner-bench-reconcile-") as d:
        tmp = Path(d)
        repo = tmp / "repo"
        shutil.copytree(cached, repo, symlinks=True)
        if not (repo / ".git").exists():
            subprocess.run([*git, "init", "-q", "-b", "main"], cwd=repo, check=True)
            subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
            subprocess.run([*git, "commit", "-qm", "generated"], cwd=repo, check=True)
        store, mirror = FileStore(tmp / "state"), tmp / "mirror.git"
        cache: dict[str, FileResult] = {}
        t0 = time.perf_counter()
        first = reconcile(store, str(repo), "main", mirror, cache)
        cold = time.perf_counter() - t0
        assert first.applied and not first.problems, first.reason
        noop, edit, edit_fetch = [], [], []
        for n in range(a.reps):
            t0 = time.perf_counter()
            reconcile(store, str(repo), "main", mirror, cache)
            noop.append(time.perf_counter() - t0)
            validate_bench.edit_one_job(repo, 2000 + n)
            t0 = time.perf_counter()
            fetch(str(repo), "main", mirror)  # what the reconcile's own fetch will cost
            edit_fetch.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            outcome = reconcile(store, str(repo), "main", mirror, cache)
            edit.append(time.perf_counter() - t0)
            assert outcome.changed, outcome
    applied = [e - f for e, f in zip(edit, edit_fetch, strict=True)]
    rows = [("cold (first) reconcile", [cold], ""),
            ("no-op reconcile", noop, "<= 0.020 s"),
            ("one-file commit, whole", edit, ""),
            ("  of which fetch", edit_fetch, ""),
            ("  fetch done -> applied", applied, "<= 0.100 s")]
    print(f"\n{'name':<26} {'min s':>8} {'median s':>9}  {'goal':<12} result")
    for name, times, goal in rows:
        limit = float(goal.split()[1]) if goal else None
        verdict = "" if limit is None else ("PASS" if statistics.median(times) <= limit
                                            else "FAIL")
        print(f"{name:<26} {min(times):>8.3f} {statistics.median(times):>9.3f}  {goal:<12} "
              f"{verdict}")
    print(f"(10,000 jobs in 1,000 files; {a.reps} repetitions; goals judged on the median)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
