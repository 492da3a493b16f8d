"""`make bench`, part 3: runs through Celery — `runner worker` vs a hand-written Celery task.

    python bench/celery_runs.py [--runs 2000] [--embedded-runs 300]

On Redis (a private redis-server on a free port), prefork concurrency 2: enqueue N runs of a
trivial job (one local target, `true`) and measure completed runs per second (first enqueue to
last finish) and enqueue→start latency p50/p90, against the floor of bench/celery_floor.py
doing the same work in the same run. Then the same for runner's embedded default (files).
Goals: throughput >= 0.8x the floor, p50 latency within floor + 5 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import start_redis  # noqa: E402

QUEUES = "queues: {bench: {}}\nworkers: {w: {queues: [bench], concurrency: 2}}\n"
JOB = "jobs:\n  trivial: {queue: bench, targets: [here], steps: [{command: 'true'}]}\n"


def wait_ready(log: Path, proc: subprocess.Popen[bytes], what: str) -> None:
    end = time.monotonic() + 60
    while b" ready." not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > end:
            raise SystemExit(f"{what} did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.05)


def figures(records: list[dict[str, Any]]) -> dict[str, float]:
    first = min(r["created"] for r in records)
    last = max(r["finished"] for r in records)
    lat = sorted((r["started"] - r["created"]) * 1000 for r in records)
    return {"runs/s": len(records) / (last - first), "p50 ms": statistics.median(lat),
            "p90 ms": lat[int(len(lat) * 0.9)]}


def floor(url: str, n: int, tmp: Path) -> dict[str, float]:
    import redis

    env = {**os.environ, "BENCH_REDIS": url}
    log = tmp / "floor.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "celery_floor", "worker",
                                 "-Q", "floor", "-c", "2", "-P", "prefork", "--without-mingle",
                                 "--without-gossip", "-l", "WARNING"], cwd=ROOT / "bench",
                                env=env, stdout=out, stderr=out, start_new_session=True)
    try:
        end = time.monotonic() + 60
        sys.path.insert(0, str(ROOT / "bench"))
        os.environ["BENCH_REDIS"] = url
        import celery_floor

        while not celery_floor.app.control.inspect(timeout=0.5).ping():
            if time.monotonic() > end:
                raise SystemExit(f"floor worker did not start:\n{log.read_text()[-2000:]}")
        for i in range(n):
            celery_floor.work.apply_async((f"f{i}", time.time()), queue="floor")
        r = redis.Redis.from_url(url)
        while len(r.keys("floor:*")) < n:
            time.sleep(0.05)
        return figures([json.loads(r.get(k)) for k in r.keys("floor:*")])
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def runner(url: str, n: int, tmp: Path) -> dict[str, float]:
    from runner import tasks
    from runner.celery_app import System, create_app
    from runner.settings import Settings
    from runner.state import FINAL

    repo = tmp / ("repo-redis" if url else "repo-files")
    for d in ("targets.d", "jobs.d"):
        (repo / d).mkdir(parents=True)
    (repo / "queues.yaml").write_text(QUEUES)
    (repo / "targets.d" / "t.yaml").write_text("targets:\n  here: {transport: local}\n")
    (repo / "jobs.d" / "j.yaml").write_text(JOB)
    env = {**os.environ, "REDIS_URL": url, "RUNNER_CACHE_DIR": str(tmp / "cache")}
    log = tmp / f"{repo.name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "runner", "worker", "w", "--repo",
                                 str(repo)], env=env, stdout=out, stderr=out,
                                start_new_session=True)
    try:
        wait_ready(log, proc, "runner worker")
        system = System(Settings.from_env(env), repo, repo / ".runner")
        config = system.config()
        app = create_app(system, config)
        ids = [tasks.enqueue(app, system.store, config, "trivial", "bench") for _ in range(n)]
        end = time.monotonic() + 600
        while True:
            records = [system.store.run(i) or {} for i in ids[-20:]]
            if all(r.get("state") in FINAL for r in records):
                records = [system.store.run(i) or {} for i in ids]
                if all(r.get("state") in FINAL for r in records):
                    break
            if time.monotonic() > end:
                raise SystemExit("runner runs did not finish")
            time.sleep(0.2)
        bad = [r for r in records if r["state"] != "SUCCESS"]
        if bad:
            raise SystemExit(f"{len(bad)} runs failed: {bad[0]}")
        return figures(records)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=2000)
    p.add_argument("--embedded-runs", type=int, default=300)
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="runner-bench-celery-") as d:
        tmp = Path(d)
        redis_server = start_redis(tmp / "redis")
        try:
            f = floor(redis_server.url, a.runs, tmp)
            import redis

            redis.Redis.from_url(redis_server.url).flushall()
            r = runner(redis_server.url, a.runs, tmp)
        finally:
            redis_server.stop()
        e = runner("", a.embedded_runs, tmp)
    print(f"\n{'name':<28} {'runs/s':>8} {'x floor':>8} {'p50 ms':>8} {'p90 ms':>8}  goal")
    print(f"{'floor: celery task (redis)':<28} {f['runs/s']:>8.1f} {1:>8.2f} "
          f"{f['p50 ms']:>8.1f} {f['p90 ms']:>8.1f}")
    ok_t = r["runs/s"] >= 0.8 * f["runs/s"]
    ok_l = r["p50 ms"] <= f["p50 ms"] + 5
    print(f"{'runner worker (redis)':<28} {r['runs/s']:>8.1f} {r['runs/s'] / f['runs/s']:>8.2f} "
          f"{r['p50 ms']:>8.1f} {r['p90 ms']:>8.1f}  throughput >= 0.8x: "
          f"{'PASS' if ok_t else 'FAIL'}; p50 <= floor + 5 ms: {'PASS' if ok_l else 'FAIL'}")
    print(f"{'runner worker (embedded)':<28} {e['runs/s']:>8.1f} {e['runs/s'] / f['runs/s']:>8.2f} "
          f"{e['p50 ms']:>8.1f} {e['p90 ms']:>8.1f}  (reported)")
    print(f"({a.runs} runs on Redis, {a.embedded_runs} embedded; prefork concurrency 2; "
          "latency: enqueue to start; runs/s: first enqueue to last finish)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
