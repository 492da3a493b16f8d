"""`make bench`: time `runner validate` on a generated 10k-job repository against its goals.

    python bench/run.py [--reps 5] [--warmup 1] [--stat min|median] [--schemas DIR] [--strict]

Rows (each a whole process, timed with perf_counter around subprocess.run):
  floor             bench/floor.py: libyaml parse + python-jsonschema, nothing else
  runner cold       runner validate --repo DIR --no-cache          goal: <= 1.2x floor
  check-jsonschema  one process per kind, summed                   goal: >= 4x runner cold
  runner warm       runner validate --repo DIR after a 1-file edit goal: <= 0.100 s
  warm in-process   runner.config.load with an in-memory cache    goal: <= 0.100 s
Goals are judged on --stat (default: min, the least noisy on a shared machine).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gen  # bench/gen.py (this directory is sys.path[0] when run as a script)

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("queues", "targets", "jobs", "schedules")
GEN_PARAMS = {"jobs": 10000, "job_files": 1000, "targets": 1000, "schedules": 2000, "seed": 0}
TIMEOUT = 900.0
GIT = [
    "git",
    "-c",
    "user.name=bench",
    "-c",
    "user.email=bench@example.invalid",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "core.hooksPath=/dev/null",
]


class CommandFailed(Exception):
    pass


@dataclass
class Row:
    name: str
    goal: str = ""
    times: list[float] = field(default_factory=list)
    note: str = ""  # shown instead of timings when there are none


# ---------------------------------------------------------------- helpers


def run(cmd: list[str], cwd: Path) -> float:
    """Run one process to completion; return its wall time. Raise CommandFailed on rc != 0."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, timeout=TIMEOUT)
    elapsed = time.perf_counter() - t0
    if p.returncode != 0:
        msg = (p.stderr or p.stdout).decode(errors="replace").strip().splitlines()
        tail = msg[-1:] or [""]
        raise CommandFailed(f"exit {p.returncode}: {' '.join(cmd[:3])}...: {tail[0][:120]}")
    return elapsed


def measure(cmds: list[list[str]], cwd: Path, reps: int, warmup: int) -> list[float]:
    """Time `reps` repetitions; each repetition is the summed wall time of all `cmds`."""
    for _ in range(warmup):
        for cmd in cmds:
            run(cmd, cwd)
    return [sum(run(cmd, cwd) for cmd in cmds) for _ in range(reps)]


def find_tool(name: str) -> str | None:
    return shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)


def runner_cmd() -> list[str] | None:
    """The runner CLI: `runner` next to sys.executable, on PATH, else `python -m runner`."""
    exe = find_tool("runner")
    for cmd in ([exe] if exe else [], [sys.executable, "-m", "runner"]):
        if (
            cmd
            and subprocess.run(
                [*cmd, "validate", "--help"], cwd=ROOT, capture_output=True, timeout=120
            ).returncode
            == 0
        ):
            return cmd
    return None


def cached_repo(params: dict[str, int]) -> tuple[Path, float | None]:
    """Generated repo under /tmp keyed by params + gen.py content; (path, gen seconds or None)."""
    h = hashlib.sha256(Path(gen.__file__).read_bytes())
    h.update(json.dumps(params, sort_keys=True).encode())
    base = Path(tempfile.gettempdir()) / "runner-bench"
    dest = base / f"repo-{h.hexdigest()[:16]}"
    if dest.exists():
        return dest, None
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="gen-", dir=base))
    t0 = time.perf_counter()
    gen.generate(tmp, **params)
    elapsed = time.perf_counter() - t0
    try:
        tmp.rename(dest)  # atomic: dest exists only when complete
    except OSError:  # a concurrent run won the race
        shutil.rmtree(tmp)
    return dest, elapsed


def edit_one_job(repo: Path, n: int) -> None:
    """Change the first description in one job file (a different file per n), then commit."""
    files = sorted((repo / "jobs.d").glob("*.yaml"))
    path = files[(n * 7919) % len(files)]
    text = path.read_text()
    new = re.sub(r"^(    description: ).*$", rf"\g<1>bench edit {n}", text, count=1, flags=re.M)
    if new == text:
        raise CommandFailed(f"no description to edit in {path}")
    path.write_text(new)
    subprocess.run([*GIT, "commit", "-qam", f"bench edit {n}"], cwd=repo, check=True)


def warm_cli(runner: list[str], repo: Path, reps: int) -> list[float]:
    validate = [*runner, "validate", "--repo", str(repo)]
    run(validate, ROOT)  # fill the cache
    times = []
    for n in range(reps):
        edit_one_job(repo, n)  # untimed
        times.append(run(validate, ROOT))
    return times


def warm_in_process(repo: Path, reps: int) -> list[float]:
    """The reconciler's path: one process keeps the per-file cache in memory; after a one-file
    edit, time only the re-load (hash every file, re-check the changed one, cross-check all)."""
    from runner.config.load import load
    from runner.source import DirSnapshot

    cache: dict = {}
    first = load(DirSnapshot(repo), cache, model_too=False)
    if first.problems:
        raise CommandFailed(f"bench repository is invalid: {first.problems[0].text()}")
    times = []
    for n in range(reps):
        edit_one_job(repo, 1000 + n)
        start = time.perf_counter()
        loaded = load(DirSnapshot(repo), cache, model_too=False)
        times.append(time.perf_counter() - start)
        if loaded.problems:
            raise CommandFailed(loaded.problems[0].text())
    return times


# ---------------------------------------------------------------- report


def stat(times: list[float], how: str) -> float:
    return min(times) if how == "min" else statistics.median(times)


def verdict(row: Row, rows: dict[str, Row], how: str) -> str:
    """PASS/FAIL/n/a for the row's goal."""

    def val(name: str) -> float | None:
        r = rows.get(name)
        return stat(r.times, how) if r and r.times else None

    mine, floor, cold = val(row.name), val("floor"), val("runner cold")
    checks: dict[str, Callable[[], bool | None]] = {
        "runner cold": lambda: None if mine is None or floor is None else mine <= 1.2 * floor,
        "check-jsonschema": lambda: None if mine is None or cold is None else mine >= 4 * cold,
        "runner warm": lambda: None if mine is None else mine <= 0.100,
        "warm in-process": lambda: None if mine is None else mine <= 0.100,
    }
    if row.name not in checks:
        return ""
    ok = checks[row.name]()
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def print_table(rows: list[Row], how: str) -> list[str]:
    by_name = {r.name: r for r in rows}
    floor = by_name["floor"].times
    print(f"\n{'name':<17} {'min s':>8} {'median s':>9} {'x floor':>8}  {'goal':<18} {'result':<6}")
    verdicts = []
    for r in rows:
        v = verdict(r, by_name, how)
        verdicts.append(v)
        lo = med = ratio = "-"
        if r.times:
            lo, med = f"{min(r.times):.3f}", f"{statistics.median(r.times):.3f}"
            ratio = f"{stat(r.times, how) / stat(floor, how):.2f}" if floor else "n/a"
        print(f"{r.name:<17} {lo:>8} {med:>9} {ratio:>8}  {r.goal:<18} {v:<6} {r.note}")
    print(f"(ratios and goals use the {how}; n = {max(len(r.times) for r in rows)} runs)")
    return verdicts


def machine() -> str:
    cpu = (
        next(
            (
                ln.split(":", 1)[1].strip()
                for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")
            ),
            "?",
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    return (
        f"machine: nproc={len(os.sched_getaffinity(0))} (cpu_count={os.cpu_count()}), "
        f"cpu={cpu}, python {platform.python_version()} ({sys.executable}), "
        f"{platform.platform()}"
    )


# ---------------------------------------------------------------- main


def guarded(row: Row, fn: Callable[[], list[float]]) -> Row:
    try:
        row.times = fn()
    except (CommandFailed, subprocess.SubprocessError, OSError) as e:
        row.note = f"error: {e}"
        print(f"  {row.name}: {row.note}", file=sys.stderr)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--stat", choices=["min", "median"], default="min")
    p.add_argument("--schemas", type=Path, default=ROOT / "runner" / "schemas")
    p.add_argument("--strict", action="store_true", help="exit 1 if any goal FAILs")
    a = p.parse_args(argv)
    schemas = a.schemas.resolve()

    print(machine())
    cached, gen_s = cached_repo(GEN_PARAMS)
    how = "cached" if gen_s is None else f"generated in {gen_s:.2f}s"
    print(f"repo: {cached} ({how}), {GEN_PARAMS}")
    runner = runner_cmd()
    cj = find_tool("check-jsonschema")
    have_schemas = all((schemas / f"{k}.schema.json").exists() for k in KINDS)

    with tempfile.TemporaryDirectory(prefix="runner-bench-") as tmp:
        repo = Path(tmp) / "repo"
        shutil.copytree(cached, repo, symlinks=True)  # runs may write caches; keep `cached` clean
        os.environ["RUNNER_CACHE_DIR"] = str(Path(tmp) / "cache")  # isolated, removed afterwards
        rows = [
            Row("floor"),
            Row("runner cold", "<= 1.2x floor"),
            Row("check-jsonschema", ">= 4x runner cold"),
            Row("runner warm", "<= 0.100 s"),
            Row("warm in-process", "<= 0.100 s"),
        ]
        floor, cold, peer, warm, inproc = rows
        if have_schemas:
            print("timing floor ...", file=sys.stderr)
            cmd = [
                sys.executable,
                str(ROOT / "bench" / "floor.py"),
                str(repo),
                "--schemas",
                str(schemas),
            ]
            guarded(floor, lambda: measure([cmd], ROOT, a.reps, a.warmup))
        else:
            floor.note = peer.note = f"schemas missing: {schemas}"
        if runner is None:
            cold.note = warm.note = "runner: not available"
        else:
            print("timing runner cold ...", file=sys.stderr)
            cmd = [*runner, "validate", "--repo", str(repo), "--no-cache"]
            guarded(cold, lambda: measure([cmd], ROOT, a.reps, a.warmup))
        if have_schemas and cj:
            print("timing check-jsonschema ...", file=sys.stderr)
            cmds = [
                [cj, "--schemafile", str(schemas / f"{k}.schema.json"), *files]
                for k in KINDS
                if (
                    files := ["queues.yaml"]
                    if k == "queues"
                    else sorted(str(f.relative_to(repo)) for f in repo.glob(f"{k}.d/*.yaml"))
                )
            ]
            guarded(peer, lambda: measure(cmds, repo, a.reps, a.warmup))
        elif not cj:
            peer.note = "check-jsonschema: not installed"
        if runner is not None:
            print("timing runner warm ...", file=sys.stderr)
            guarded(warm, lambda: warm_cli(runner, repo, a.reps))
        print("timing runner warm in-process ...", file=sys.stderr)
        guarded(inproc, lambda: warm_in_process(repo, a.reps))
    verdicts = print_table(rows, a.stat)
    errors = any(r.note.startswith("error") for r in rows)
    return 1 if errors or (a.strict and "FAIL" in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
