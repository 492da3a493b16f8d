"""`make bench`, part 3: runs through Celery — `runner worker` vs a hand-written Celery task.

    python bench/celery_runs.py [--runs 2000] [--paced 200] [--embedded-runs 300] [--rounds 5]

On Redis (a private redis-server on a free port), prefork concurrency 2, one local target
running `true`, against the floor of bench/celery_floor.py doing the same work (start `true`
in a subprocess, store a small result) in the same run:
- throughput: N runs are enqueued before the worker starts; completed runs per second from
  the first start to the last finish, and the CPU the worker and its pool spent per run;
- latency: with the worker idle, runs enqueued one at a time every 10 ms:
  enqueue -> start p50/p90. (With a backlog, enqueue -> start is queue wait, which follows
  throughput; it is printed too.)
Then the same for runner's embedded default (files). Goals: throughput >= 0.8x the floor on
Redis; p50 latency within floor + 5 ms on Redis and embedded.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import start_redis  # noqa: E402

QUEUES = "queues: {bench: {}}\nworkers: {w: {queues: [bench], concurrency: 2}}\n"
JOB = "jobs:\n  trivial: {queue: bench, targets: [here], steps: [{command: 'true'}]}\n"
PACE = 0.010  # seconds between paced enqueues (below capacity)


def session_cpu(sid: int) -> float:
    """CPU seconds (user + system, reaped children included) of the processes of session
    `sid`: the worker and its pool."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:
            total += sum(int(x) for x in fields[11:15])
    return total / tick


def pid_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) of process `pid`, 0 without one."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:13]) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


class Bench:
    """One system under test: start its worker, enqueue a run, read finished records."""

    name = ""
    redis_pid: int | None = None  # the Redis server, whose CPU is reported too

    def start(self) -> subprocess.Popen[bytes]: ...

    def enqueue(self) -> str: ...

    def done(self, ids: list[str]) -> list[dict[str, Any]] | None:
        """The records of `ids` once all have finished, else None."""

    def measure(self, n: int, paced: int, pace: float) -> dict[str, float]:
        ids = [self.enqueue() for _ in range(n)]  # the backlog, before the worker starts
        proc = self.start()
        try:
            end = time.monotonic() + 60
            while not self.done(ids[:1]):
                if proc.poll() is not None or time.monotonic() > end:
                    raise SystemExit(f"{self.name} worker did not start")
                time.sleep(0.005)
            cpu0, redis0 = session_cpu(proc.pid), pid_cpu(self.redis_pid)
            records = self.wait(ids)
            cpu = session_cpu(proc.pid) - cpu0
            redis_cpu = pid_cpu(self.redis_pid) - redis0
            first = min(r["started"] for r in records)
            last = max(r["finished"] for r in records)
            backlog = [(r["started"] - r["created"]) * 1000 for r in records]
            paced_ids = []
            for _ in range(paced):
                paced_ids.append(self.enqueue())
                time.sleep(pace)  # the pace of arrivals, not a wait for a result
            lat = [(r["started"] - r["created"]) * 1000 for r in self.wait(paced_ids)]
        finally:
            os.kill(proc.pid, signal.SIGTERM)  # the worker stops its pool
            try:
                proc.wait(30)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        return {"runs/s": (len(records) - 1) / (last - first),
                "cpu ms": cpu * 1000 / (len(records) - 1),
                "redis ms": redis_cpu * 1000 / (len(records) - 1),
                "p50 ms": statistics.median(lat), "p90 ms": pct(lat, 0.9),
                "backlog p50 ms": statistics.median(backlog)}

    def wait(self, ids: list[str]) -> list[dict[str, Any]]:
        end = time.monotonic() + 600
        while (records := self.done(ids)) is None:
            if time.monotonic() > end:
                raise SystemExit(f"{self.name}: runs did not finish")
            time.sleep(0.05)
        return records


class Floor(Bench):
    name = "floor"

    def __init__(self, url: str, tmp: Path) -> None:
        import redis

        sys.path.insert(0, str(ROOT / "bench"))
        os.environ["BENCH_REDIS"] = url
        import celery_floor

        self.url, self.tmp, self.task = url, tmp, celery_floor.work
        self.r = redis.Redis.from_url(url)
        self.count = 0

    def start(self) -> subprocess.Popen[bytes]:
        with open(self.tmp / "floor.log", "wb") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "celery_floor", "worker", "-Q", "floor",
                 "-c", "2", "-P", "prefork", "--without-mingle", "--without-gossip",
                 "-l", "WARNING"], cwd=ROOT / "bench", env={**os.environ, "BENCH_REDIS":
                                                               self.url},
                stdout=out, stderr=out, start_new_session=True)

    def enqueue(self) -> str:
        self.count += 1
        run_id = f"f{self.count}"
        self.task.apply_async((run_id, time.time()), queue="floor")
        return run_id

    def done(self, ids: list[str]) -> list[dict[str, Any]] | None:
        raws = self.r.mget([f"floor:{i}" for i in ids])
        return None if None in raws else [json.loads(r) for r in raws]


class Runner(Bench):
    def __init__(self, url: str, tmp: Path) -> None:
        from runner.celery import tasks
        from runner.celery.app import create_app
        from runner.settings import Settings
        from runner.system import System

        self.name = "runner " + ("redis" if url else "embedded")
        self.repo = tmp / ("repo-redis" if url else "repo-files")
        for d in ("targets.d", "jobs.d"):
            (self.repo / d).mkdir(parents=True)
        (self.repo / "queues.yaml").write_text(QUEUES)
        (self.repo / "targets.d" / "t.yaml").write_text("targets:\n  here: {transport: local}\n")
        (self.repo / "jobs.d" / "j.yaml").write_text(JOB)
        self.env = {**os.environ, "REDIS_URL": url, "RUNNER_CACHE_DIR": str(tmp / "cache")}
        self.log = tmp / f"{self.repo.name}.log"
        self.system = System(Settings.from_env(self.env), self.repo, self.repo / ".runner")
        config = self.system.config()
        app = create_app(self.system, config)
        self.enqueue: Callable[[], str] = lambda: tasks.enqueue(  # type: ignore[method-assign]
            app, self.system.store, config, "trivial", "bench")

    def start(self) -> subprocess.Popen[bytes]:
        with open(self.log, "wb") as out:
            return subprocess.Popen([sys.executable, "-m", "runner", "worker", "w", "--repo",
                                     str(self.repo)], env=self.env, stdout=out, stderr=out,
                                    start_new_session=True)

    def done(self, ids: list[str]) -> list[dict[str, Any]] | None:
        from runner.runs import FINAL

        records = []  # as JSON: the shape Floor's are in
        for i in reversed(ids):  # the last enqueued finish last
            r = self.system.store.run(i)
            if r is None or r.state not in FINAL:
                return None
            if r.state != "SUCCESS":
                raise SystemExit(f"{self.name}: run failed: {r}")
            records.append(r.to_json())
        return records


def median_of(results: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(x[k] for x in results) for k in results[0]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=2000)
    p.add_argument("--paced", type=int, default=200)
    p.add_argument("--embedded-runs", type=int, default=300)
    p.add_argument("--rounds", type=int, default=5,
                   help="floor and runner measured alternately this many times (paired)")
    a = p.parse_args()
    fs, rs, ratios = [], [], []
    with tempfile.TemporaryDirectory(prefix="runner-bench-celery-") as d:
        tmp = Path(d)
        redis_server = start_redis(tmp / "redis")
        try:
            floor, runner = Floor(redis_server.url, tmp), Runner(redis_server.url, tmp)
            floor.redis_pid = runner.redis_pid = redis_server.proc.pid
            for _ in range(a.rounds):  # alternate, so a slower stretch of the machine
                fs.append(floor.measure(a.runs, a.paced, PACE))  # hits both sides alike
                rs.append(runner.measure(a.runs, a.paced, PACE))
                ratios.append(rs[-1]["runs/s"] / fs[-1]["runs/s"])
                print(f"round {len(ratios)}: runs/s floor {fs[-1]['runs/s']:.0f} runner "
                      f"{rs[-1]['runs/s']:.0f} ({ratios[-1]:.2f}x); cpu ms/run floor "
                      f"{fs[-1]['cpu ms']:.2f} runner {rs[-1]['cpu ms']:.2f}", flush=True)
        finally:
            redis_server.stop()
        e = Runner("", tmp).measure(a.embedded_runs, a.paced, PACE)
    f, r = median_of(fs), median_of(rs)
    print(f"\n{'name':<26} {'runs/s':>7} {'x floor':>7} {'cpu ms/run':>10} {'x floor':>7} "
          f"{'redis ms':>8} {'p50 ms':>7} {'p90 ms':>7} {'backlog p50':>11}  goal")

    def row(name: str, x: dict[str, float], goal: str) -> None:
        print(f"{name:<26} {x['runs/s']:>7.1f} {x['runs/s'] / f['runs/s']:>7.2f} "
              f"{x['cpu ms']:>10.2f} {x['cpu ms'] / f['cpu ms']:>7.2f} {x['redis ms']:>8.2f} "
              f"{x['p50 ms']:>7.1f} "
              f"{x['p90 ms']:>7.1f} {x['backlog p50 ms']:>11.0f}  {goal}")

    row("floor: celery task (redis)", f, "")
    ratio = statistics.median(ratios)
    ok_t = ratio >= 0.8
    ok_l = r["p50 ms"] <= f["p50 ms"] + 5
    row("runner worker (redis)", r, f"throughput >= 0.8x: {'PASS' if ok_t else 'FAIL'} "
        f"({ratio:.2f}x; rounds {', '.join(f'{x:.2f}' for x in ratios)}); "
        f"p50 <= floor + 5 ms: {'PASS' if ok_l else 'FAIL'}")
    ok_e = e["p50 ms"] <= f["p50 ms"] + 5
    row("runner worker (embedded)", e, f"(throughput reported) p50 <= floor + 5 ms: "
        f"{'PASS' if ok_e else 'FAIL'}")
    print(f"(Redis: medians of {a.rounds} rounds, floor and runner alternately; the throughput "
          "goal is on the median of the rounds' paired ratios)")
    print(f"(throughput: {a.runs} runs on Redis, {a.embedded_runs} embedded, queued before the "
          "worker starts, first start to last finish; cpu: the worker and its pool; redis: "
          "the Redis server's CPU per run then; p50/p90: "
          f"enqueue -> start of {a.paced} runs enqueued every 10 ms; backlog "
          "p50: enqueue -> start of the queued runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
