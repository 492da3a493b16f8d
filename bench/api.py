"""`make bench`, part 6: the monitoring API under load.

    python bench/api.py [--runs 100000] [--requests 5000] [--clients 50] [--ws 100] [--changes 200]

A private redis-server on a free port holds `--runs` run records (as workers write them);
`runner api` serves them on a free port (one uvicorn process).
- GET /api/runs?limit=50 from `--clients` concurrent keep-alive clients (a minimal asyncio
  HTTP/1.1 client in this process): p50/p99, requests per second and the server's CPU time
  per request (from /proc: the figure that holds on a busy machine), beside GET /api/health
  under the same load (FastAPI's own path: no token, an answer reused for a second) and the
  store's own runs_page in-process (the data floor). Goal p99 <= 50 ms.
- event delivery: `--ws` WebSocket clients connected; `--changes` run state changes written
  through the store (what a worker does), one every 20 ms; the delay from before the write to
  each client's receipt, p50/p99 over every client and change. Goal p99 <= 250 ms; the seeds'
  2 s polling is 1,000 ms on average, 2,000 ms at worst.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import free_port, start_redis, wait_port  # noqa: E402

TOKEN = "bench-token-0123456789abcdef"
QUEUES = "queues: {bench: {}}\nworkers: {w: {queues: [bench], concurrency: 2}}\n"
JOB = "jobs:\n  trivial: {queue: bench, targets: [here], steps: [{command: 'true'}]}\n"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def seed(url: str, runs: int) -> None:
    from runner.store.redis import RedisStore

    store = RedisStore(url)
    now = time.time() - runs * 0.05
    pipe = store.r.pipeline(transaction=False)
    for i in range(runs):
        created = now + i * 0.05
        rid = f"{int(created * 1000):012x}-{i:08x}"
        job = f"job-{i % 20}"
        record = {"run_id": rid, "job": job, "revision": "0" * 40, "trigger": "cli",
                  "state": "SUCCESS" if i % 10 else "FAILURE", "queue": "bench",
                  "targets": ["here"], "worker": "w-1@bench", "created": created,
                  "received": created + 0.001, "started": created + 0.002,
                  "finished": created + 0.3, "error": None, "deliveries": 1,
                  "result": {"targets": {"here": {"status": "success", "rc": 0,
                                                  "stdout": "x" * 200, "stderr": ""}}}}
        pipe.hset(f"runner:run:{rid}", mapping={k: json.dumps(v) for k, v in record.items()})
        pipe.zadd("runner:runs", {rid: created})
        pipe.zadd(f"runner:runs:{job}", {rid: created})
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()


async def load(url: str, path: str, clients: int, requests: int) -> tuple[list[float], float]:
    """`clients` keep-alive connections, each sending its next request when the last answer
    is in (a minimal asyncio HTTP/1.1 client: httpx costs more CPU per request than the
    server on these 2 cores, which would measure the client)."""
    host, port = url.removeprefix("http://").split(":")
    request = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}"
               "\r\n\r\n").encode()
    latencies: list[float] = []
    left = requests

    async def get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head[:100]
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        await reader.readexactly(length)

    async def one(warm: bool) -> None:
        nonlocal left
        reader, writer = await asyncio.open_connection(host, int(port), limit=2**22)
        for _ in range(3):
            await get(reader, writer)
        await ready.wait()
        while left > 0 and not warm:
            left -= 1
            t = time.perf_counter()
            await get(reader, writer)
            latencies.append(time.perf_counter() - t)
        writer.close()

    ready = asyncio.Event()
    tasks = [asyncio.create_task(one(False)) for _ in range(clients)]
    await asyncio.sleep(0.5)  # let every connection open and warm up
    start = time.perf_counter()
    ready.set()
    await asyncio.gather(*tasks)
    return latencies, requests / (time.perf_counter() - start)


async def events(url: str, redis_url: str, n_clients: int, changes: int) -> list[float]:
    from websockets.asyncio.client import connect

    from runner.store.redis import RedisStore

    store = RedisStore(redis_url)
    sent: dict[str, float] = {}
    delays: list[float] = []
    ws_url = url.replace("http://", "ws://") + "/api/events"
    done = asyncio.Event()
    received = 0

    async def client() -> None:
        nonlocal received
        async with connect(ws_url, max_size=None) as ws:
            await ws.send(json.dumps({"token": TOKEN}))
            json.loads(await ws.recv())  # the snapshot
            ready.append(1)
            while not done.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 10)
                except TimeoutError:
                    return
                at = time.perf_counter()
                e = json.loads(raw)
                if e.get("kind") == "run" and e.get("run_id") in sent:
                    delays.append(at - sent[e["run_id"]])
                    received += 1
                    if received == n_clients * changes:
                        done.set()

    ready: list[int] = []
    tasks = [asyncio.create_task(client()) for _ in range(n_clients)]
    while len(ready) < n_clients:
        await asyncio.sleep(0.05)  # waiting for connections, polled
    ids = [r.run_id for r in store.runs(limit=changes)]
    for rid in ids:
        sent[rid] = time.perf_counter()
        await asyncio.to_thread(store.update_run, rid, {"state": "STARTED"})
        await asyncio.sleep(0.02)  # the pace of the changes
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), 30)
    done.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return delays


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=100_000)
    p.add_argument("--requests", type=int, default=5000)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--ws", type=int, default=100)
    p.add_argument("--changes", type=int, default=200)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        redis = start_redis(Path(tmp) / "redis")
        repo = Path(tmp) / "config"
        for d in ("targets.d", "jobs.d"):
            (repo / d).mkdir(parents=True)
        (repo / "queues.yaml").write_text(QUEUES)
        (repo / "targets.d" / "t.yaml").write_text("targets:\n  here: {transport: local}\n")
        (repo / "jobs.d" / "j.yaml").write_text(JOB)
        t = time.perf_counter()
        seed(redis.url, a.runs)
        print(f"seeded {a.runs} runs in {time.perf_counter() - t:.1f}s", file=sys.stderr)
        port = free_port()
        env = {**os.environ, "REDIS_URL": redis.url, "RUNNER_API_TOKENS": "operator=env:BT",
               "BT": TOKEN, "RUNNER_CACHE_DIR": str(Path(tmp) / "cache")}
        api = subprocess.Popen([sys.executable, "-m", "runner", "api", "--repo", str(repo),
                                "--bind", f"127.0.0.1:{port}"], env=env,
                               start_new_session=True)
        try:
            wait_port(port, api, 30)
            url = f"http://127.0.0.1:{port}"
            from runner.store.redis import RedisStore

            store = RedisStore(redis.url)
            floor = []
            for _ in range(500):
                t = time.perf_counter()
                store.runs_page(limit=50)
                floor.append(time.perf_counter() - t)
            rows = [("store.runs_page(50), 1 client", floor, 1 / statistics.mean(floor),
                     None, "")]
            for name, path, n, goal in (
                    (f"GET /api/health, {a.clients} clients", "/api/health", a.requests, ""),
                    (f"GET /api/runs?limit=50, {a.clients} c.", "/api/runs?limit=50",
                     a.requests, "50"),
                    ("  ... &state=FAILURE&job=job-0",
                     "/api/runs?limit=50&state=FAILURE&job=job-0", a.requests // 2, "")):
                before = cpu_seconds(api.pid)
                lat, rps = asyncio.run(load(url, path, a.clients, n))
                rows.append((name, lat, rps, (cpu_seconds(api.pid) - before) / n, goal))
            print(f"\nAPI with {a.runs:,} runs in Redis (one uvicorn process, 2 cores shared "
                  "with the clients)")
            print(f"{'request':<38} {'p50 ms':>7} {'p99 ms':>7} {'goal p99':>8} {'req/s':>7} "
                  f"{'server us/req':>13}")
            for name, values, rate, cpu, goal in rows:
                print(f"{name:<38} {pct(values, 0.5) * 1000:>7.1f} "
                      f"{pct(values, 0.99) * 1000:>7.1f} {goal:>8} {rate:>7.0f} "
                      f"{'-' if cpu is None else f'{cpu * 1e6:.0f}':>13}")
            delays = asyncio.run(events(url, redis.url, a.ws, a.changes))
            expected = a.ws * a.changes
            print(f"\nevent delivery to {a.ws} WebSocket clients, {a.changes} run changes "
                  f"(one every 20 ms): {len(delays)}/{expected} delivered")
            print(f"{'':<38} {'p50 ms':>7} {'p99 ms':>7} {'goal p99':>8} {'max ms':>7}")
            if delays:
                print(f"{'pushed (runner:events -> WebSocket)':<38} "
                      f"{pct(delays, 0.5) * 1000:>7.1f} {pct(delays, 0.99) * 1000:>7.1f} "
                      f"{'250':>8} {max(delays) * 1000:>7.1f}")
            print(f"{'the seeds: poll every 2 s':<38} {1000.0:>7.1f} {1980.0:>7.1f} {'':>8} "
                  f"{2000.0:>7.1f}")
            ok = bool(delays) and len(delays) == expected
            return 0 if ok else 1
        finally:
            os.killpg(api.pid, signal.SIGTERM)
            api.wait(10)
            redis.stop()


if __name__ == "__main__":
    raise SystemExit(main())
