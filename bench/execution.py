"""`make bench`, part 2: `runner run` fanning out over SSH, against a bare asyncssh floor.

    python bench/execution.py [--reps 3] [--targets 100] [--parallel 50] [--big 1000]

Every row runs against one OpenSSH sshd on a free loopback port (throw-away keys, MaxStartups
raised), the 100 targets being distinct names that all point at it. Same command everywhere.
  floor fan-out      bench/ssh_floor.py: N connections, PARALLEL at a time, the command on each
  runner fan-out     `runner run fanout` as a whole process (defaults: 9 sessions/connection)
                                                         goal: <= 1.3x floor fan-out
  runner 1 sess/conn the same with one session per connection (one connection per target)
  floor pooled x5    5 rounds of the command over N already-open connections (in one process)
  runner pooled x5   5 runs of the job in one Engine whose connections stay open
                                                         goal: <= 1.5x floor pooled x5
  runner 1000        `runner run` on --big targets: wall time and peak RSS, per target
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import Sshd, start_sshd  # noqa: E402

COMMAND = "echo ok"


def write_repo(repo: Path, sshd: Sshd, n: int, parallel: int) -> None:
    for d in ("targets.d", "jobs.d"):
        (repo / d).mkdir(parents=True, exist_ok=True)
    (repo / "queues.yaml").write_text("queues: {bench: {}}\nworkers: {w: {queues: [bench]}}\n")
    lines = ["targets:"]
    for i in range(n):
        lines.append(f"  t{i:05d}: {{transport: ssh, host: 127.0.0.1, port: {sshd.port}, "
                     f"user: {sshd.user}, key_file: {sshd.client_key}, "
                     f"known_hosts: {sshd.known_hosts}, groups: [fleet]}}")
    (repo / "targets.d" / "fleet.yaml").write_text("\n".join(lines) + "\n")
    (repo / "jobs.d" / "fanout.yaml").write_text(
        f"jobs:\n  fanout:\n    queue: bench\n    targets: [group:fleet]\n"
        f"    concurrency: {parallel}\n    steps: [{{command: {COMMAND}}}]\n")


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, float]:
    """Wall seconds, peak RSS (KiB) and CPU seconds (user + system) of one whole process;
    fails loudly on exit != 0."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            out.seek(0)
            err.seek(0)
            raise SystemExit(f"failed: {' '.join(cmd[:4])}...\n{err.read().decode()[-2000:]}"
                             f"{out.read().decode()[-2000:]}")
    return elapsed, usage.ru_maxrss, usage.ru_utime + usage.ru_stime


def runner_run(repo: Path, env: dict[str, str] | None = None) -> tuple[float, int, float]:
    return timed([sys.executable, "-m", "runner", "run", "fanout", "--repo", str(repo),
                  "--format", "json"], env)


def pooled_runner(repo: Path, rounds: int) -> tuple[float, float]:
    """5 runs of the job in one Engine after a warm-up run that opens the connections."""
    from runner.config.load import load_or_raise
    from runner.executor.engine import Engine
    from runner.source import DirSnapshot

    config = load_or_raise(DirSnapshot(repo))
    job = config.jobs["fanout"]

    async def main() -> tuple[float, float]:
        engine = Engine()
        try:
            await engine.run(job, config.targets, {}, run_id="warm", revision="b")
            t0, c0 = time.perf_counter(), time.process_time()
            for i in range(rounds):
                r = await engine.run(job, config.targets, {}, run_id=str(i), revision="b")
                assert r.status == "success", r.targets
            return time.perf_counter() - t0, time.process_time() - c0
        finally:
            await engine.close()

    return asyncio.run(main())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--targets", type=int, default=100)
    p.add_argument("--parallel", type=int, default=50)
    p.add_argument("--big", type=int, default=1000)
    a = p.parse_args()
    rows: list[tuple[str, list[float], str, str]] = []
    with tempfile.TemporaryDirectory(prefix="runner-bench-ssh-") as tmp:
        sshd = start_sshd(Path(tmp) / "sshd", max_startups=1000)
        try:
            repo, big = Path(tmp) / "repo", Path(tmp) / "big"
            write_repo(repo, sshd, a.targets, a.parallel)
            write_repo(big, sshd, a.big, a.parallel)
            floor_cmd = [sys.executable, str(ROOT / "bench" / "ssh_floor.py"), "127.0.0.1",
                         str(sshd.port), sshd.user, str(sshd.client_key),
                         str(sshd.known_hosts), str(a.targets), str(a.parallel)]
            print(f"sshd on 127.0.0.1:{sshd.port}; {a.targets} targets, {a.parallel} at a "
                  f"time, command {COMMAND!r}", file=sys.stderr)
            floor: list[tuple[float, float]] = []
            mux: list[tuple[float, float]] = []
            single: list[tuple[float, float]] = []
            fpool: list[tuple[float, float]] = []
            rpool: list[tuple[float, float]] = []
            one_per_conn = {"RUNNER_SSH_MAX_SESSIONS": "1",
                            "RUNNER_MAX_CONNECTIONS_PER_HOST": str(a.parallel)}
            for _ in range(a.reps):  # interleaved, so drift hits every row alike
                floor.append(_wall_cpu(timed(floor_cmd)))
                mux.append(_wall_cpu(runner_run(repo)))
                single.append(_wall_cpu(runner_run(repo, one_per_conn)))
                wall, cpu = subprocess.run([*floor_cmd, "5", COMMAND], check=True,
                                           capture_output=True, text=True).stdout.split()
                fpool.append((float(wall), float(cpu)))
                rpool.append(pooled_runner(repo, 5))
            big_s, big_kb, _ = runner_run(big)
            small_s, small_kb, _ = runner_run(repo)
        finally:
            sshd.stop()
    f, fp = min(floor), min(fpool)
    rows = [("floor fan-out", floor, "", ""),
            ("runner fan-out", mux, "<= 1.3x floor", _verdict(min(mux)[0] <= 1.3 * f[0])),
            ("runner 1 sess/conn", single, "(one conn/target)", ""),
            ("floor pooled x5", fpool, "", ""),
            ("runner pooled x5", rpool, "<= 1.5x floor pooled",
             _verdict(min(rpool)[0] <= 1.5 * fp[0]))]
    print(f"\n{'name':<20} {'min s':>8} {'median s':>9} {'x floor':>8}  {'goal':<22} "
          f"{'result':<6} {'client cpu s':>12} {'x floor':>8}")
    for name, runs, goal, verdict in rows:
        base = fp if "pooled" in name else f
        walls, cpu = [w for w, _ in runs], min(c for _, c in runs)
        print(f"{name:<20} {min(walls):>8.3f} {statistics.median(walls):>9.3f} "
              f"{min(walls) / base[0]:>8.2f}  {goal:<22} {verdict:<6} {cpu:>12.3f} "
              f"{cpu / base[1]:>8.2f}")
    print(f"(min of {a.reps} interleaved runs; ratios of the minimums; client cpu: user + "
          "system seconds of the measured process alone, sshd's work not included)")
    print(f"\nscale: {a.targets} targets {small_s:.2f}s, peak RSS {small_kb / 1024:.0f} MiB; "
          f"{a.big} targets {big_s:.2f}s, peak RSS {big_kb / 1024:.0f} MiB "
          f"({big_s / small_s:.1f}x the time, {big_kb / small_kb:.2f}x the memory for "
          f"{a.big / a.targets:.1f}x the targets)")
    return 0


def _wall_cpu(measured: tuple[float, int, float]) -> tuple[float, float]:
    return measured[0], measured[2]


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


if __name__ == "__main__":
    sys.exit(main())
