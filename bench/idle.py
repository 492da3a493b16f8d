"""`make bench`, idle: what `runner up` costs with nothing due and nothing queued.

    python bench/idle.py [--seconds 30] [--settle 20] [--only embedded|redis]

Starts `runner up` on a git copy of the demo configuration (its every-1m schedule replaced by
a daily cron far from now, so nothing is due in the window), on the embedded default and on
a private redis-server; waits for the reconciler to apply the commit and for every process
to settle, then reads the CPU of every process of up's session (and redis-server) from /proc
over the window. Prints % of one core per process and the total against the goal: at most
3% of one core for everything together (issue 18, "Idle costs nothing").
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers.repos import copy_demo, git  # noqa: E402
from tests.servers import runner_up, start_redis  # noqa: E402

GOAL = 3.0  # % of one core, all processes together
FAR = "0 0 1 1 *"  # once a year, on 1 January: never in the window (unless run then)
SCHEDULES = f"""schedules:
  health-daily: {{job: health-check, cron: "{FAR}", overlap: forbid}}
  nightly-cleanup:
    job: tmp-cleanup
    cron: "{FAR}"
    timezone: Europe/Berlin
    overlap: forbid
    starting_deadline: 10m
"""
TICK = os.sysconf("SC_CLK_TCK")


def stat(pid: str) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def role(pid: str, parents: dict[str, str], argv: dict[str, list[str]]) -> str:
    """The name a process of the session is reported under."""
    args, parent = argv.get(pid, []), parents.get(pid)
    if parent in argv and argv[parent] == args:  # forked, not started: a pool process
        return f"{role(parent, parents, argv).removesuffix(' main')} pool"
    if "redis-server" in " ".join(args[:1]):
        return "redis-server"
    if "-m" in args and "runner" in args:
        sub = args[args.index("runner") + 1:]
        if sub[:1] == ["up"]:
            return "up (supervisor)"
        if sub[:1] == ["worker"]:
            return f"worker {sub[1]} main"
        return sub[0] if sub else "runner"
    return " ".join(args[:2]) or pid


def snapshot(sid: int, extra: set[int]) -> dict[str, tuple[str, float]]:
    """pid -> (role, CPU seconds) for the processes of session `sid` and `extra`."""
    fields, parents, argv = {}, {}, {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        f = stat(pid)
        if f is None or (int(f[3]) != sid and int(pid) not in extra):
            continue
        fields[pid] = f
        parents[pid] = f[1]
        try:
            argv[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        except OSError:
            argv[pid] = []
    # utime, stime and the reaped children's (a git started and waited for by the publisher)
    return {pid: (role(pid, parents, argv), sum(int(x) for x in f[11:15]) / TICK)
            for pid, f in fields.items()}


def measure(sid: int, extra: set[int], seconds: float) -> dict[str, float]:
    """% of one core per role over `seconds` (processes present at both ends)."""
    before, t0 = snapshot(sid, extra), time.monotonic()
    time.sleep(seconds)  # the measuring window, not a wait for a result
    after, elapsed = snapshot(sid, extra), time.monotonic() - t0
    out: dict[str, float] = defaultdict(float)
    for pid, (name, cpu) in after.items():
        if pid in before:
            out[name] += (cpu - before[pid][1]) * 100 / elapsed
    return dict(out)


def poll(what: str, check: object, deadline: float) -> None:
    end = time.monotonic() + deadline
    while not check():  # type: ignore[operator]
        if time.monotonic() > end:
            raise SystemExit(f"idle bench: {what} did not happen within {deadline:.0f}s")
        time.sleep(0.2)


def run(kind: str, tmp: Path, seconds: float, settle: float) -> dict[str, float]:
    repo = copy_demo(tmp / kind)
    (repo / "schedules.d" / "ops.yaml").write_text(SCHEDULES)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "idle")
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["PYTHONPATH"] = os.environ.get("PYTHONPATH") or str(ROOT)  # the code measured
    extra: set[int] = set()
    redis = None
    if kind == "redis":
        redis = start_redis(tmp / "redis")
        env["REDIS_URL"] = redis.url
        extra.add(redis.proc.pid)
    log = tmp / f"{kind}.log"
    try:
        with runner_up(repo, log, env=env) as up:
            poll("the workers' start", lambda: up.poll() is not None or sum(
                n.endswith(" pool") for n, _ in snapshot(up.pid, extra).values()) >= 6, 120)
            if up.poll() is not None:
                raise SystemExit(f"runner up exited: {log.read_text()[-2000:]}")
            time.sleep(settle)  # start-up work (imports, first reconcile, publish) ends
            return measure(up.pid, extra, seconds)
    finally:
        if redis is not None:
            redis.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--settle", type=float, default=20.0)
    p.add_argument("--only", choices=("embedded", "redis"))
    a = p.parse_args()
    kinds = [a.only] if a.only else ["embedded", "redis"]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            results[kind] = run(kind, Path(tmp), a.seconds, a.settle)
    names = sorted({n for r in results.values() for n in r})
    print(f"idle CPU, % of one core over {a.seconds:.0f} s (goal: total <= {GOAL}%)")
    print(f"{'process':<28}" + "".join(f"{k:>10}" for k in kinds))
    for n in names:
        print(f"{n:<28}" + "".join(f"{results[k].get(n, 0.0):>10.2f}" for k in kinds))
    totals = {k: sum(r.values()) for k, r in results.items()}
    print(f"{'total':<28}" + "".join(f"{totals[k]:>10.2f}" for k in kinds))
    print(f"{'':<28}" + "".join(f"{'PASS' if totals[k] <= GOAL else 'FAIL':>10}"
                                for k in kinds))
    sys.exit(0 if all(t <= GOAL for t in totals.values()) else 1)


if __name__ == "__main__":
    main()
