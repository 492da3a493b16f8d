"""`make bench`, beat at scale: runner's beat vs Celery's own beat, side by side, on Redis.

    python bench/beat_scale.py [--sizes 1000,10000,100000] [--seconds 60] [--deadline 300]

Each side gets the same schedules: N daily crons `M H * * *` at random minutes in 8 time zones
(none due for 4 hours), plus one `every: 2s` schedule; one private redis-server (flushed between
rows). Runner: `python -m runner beat --repo DIR` (directory mode, REDIS_URL set) on a generated
configuration (schedules.d/*.yaml). Celery: `celery -A beat_celery beat -s FILE` (its default
PersistentScheduler; bench/beat_celery.py: Celery's crontab has no per-entry time zone, so each
entry is a small crontab subclass whose `tz` is the entry's zone). Rows, per size N:
- idle CPU: the beat's CPU (its session, from /proc) over the window once it is ready, as % of
  a core; the window includes the every-2s firings (30 a minute), nothing else is due. RSS:
  the beat's VmRSS at the end of the window.
- every-2s lateness p50/p99 over the window. Runner: `created - scheduled_for` of its run
  records in the store. Celery's interval is relative to the last send, so: the arrival of its
  task messages on the Redis list (BLPOP in this script), lateness = arrival - (first arrival
  + 2 s * i). A firing that did not happen in the window counts (fired k/expected).
Then, at D = min(10,000, largest N): D crons due at the same UTC minute (local M H per zone):
time from that minute until the last run is queued (runner: max `created`; Celery: the list
holding all D messages, polled every 20 ms). And at the largest N: one schedule's definition
changed to fire at once. Runner: its schedules file rewritten (beat re-reads --repo every
system.DIR_RELOAD s); the time from the write to the run's `created`. Celery's beat never
re-reads beat_schedule (beat_max_loop_interval only bounds its sleep): the change is a
restart (SIGTERM, start again with the changed entry); the time from the SIGTERM to the changed
entry's (interval 1 s, last run long ago: due at the first tick) message arriving.
A side that is not ready, or has not done the thing, within --deadline prints
"did not finish in N s" (a FAIL). Goals: runner <= 5% of a core idle and every-2s p99 <= 1 s
at 100,000; due-at-once <= 10 s; change <= 1 s; runner better than Celery's beat on every row.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import redis
import yaml
from celery_runs import pct, session_cpu  # bench/ is sys.path[0] when run as a script

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import start_redis  # noqa: E402

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney",
         "America/Los_Angeles", "Asia/Kolkata", "America/Sao_Paulo"]
PER_FILE = 1000  # schedules per schedules.d file
EVERY = 2.0
QUEUES = "queues: {bench: {}}\nworkers: {w: {queues: [bench], concurrency: 1}}\n"
JOBS = "jobs:\n" + "".join(f"  {j}: {{queue: bench, targets: [here], steps: [{{command: "
                           f"'true'}}]}}\n" for j in ("tick", "daily", "changed"))

Cron = tuple[str, int, int, str]  # name, minute, hour, zone


def idle_crons(n: int, rng: random.Random, now: datetime) -> list[Cron]:
    """n daily crons, none due in the 4 hours from `now` (nor the hour before)."""
    out = []
    for i in range(n):
        zone = ZONES[i % len(ZONES)]
        busy = {(now + timedelta(hours=h)).astimezone(ZoneInfo(zone)).hour for h in range(-1, 5)}
        hour = rng.choice([h for h in range(24) if h not in busy])
        out.append((f"daily-{i:06d}", rng.randrange(60), hour, zone))
    return out


def due_crons(n: int, at: datetime) -> list[Cron]:
    """n daily crons all due at the UTC instant `at` (its wall clock in each zone)."""
    local = [at.astimezone(ZoneInfo(z)) for z in ZONES]
    return [(f"daily-{i:06d}", local[i % len(ZONES)].minute, local[i % len(ZONES)].hour,
             ZONES[i % len(ZONES)]) for i in range(n)]


def dump(doc: dict[str, object]) -> str:
    return yaml.dump(doc, Dumper=yaml.CSafeDumper, sort_keys=False, default_flow_style=None)


def runner_file(crons: list[Cron], changed: str | None = None) -> str:
    docs: dict[str, object] = {}
    for name, m, h, z in crons:
        docs[name] = ({"job": "changed", "at": datetime.now(UTC).replace(microsecond=0)
                       .isoformat()} if name == changed
                      else {"job": "daily", "cron": f"{m} {h} * * *", "timezone": z})
    return dump({"schedules": docs})


def pid_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Side:
    """One beat under test on the shared Redis: start, ready, observe, stop."""

    name = ""
    proc: subprocess.Popen[bytes] | None = None

    def __init__(self, url: str, tmp: Path) -> None:
        self.url, self.tmp = url, tmp
        self.r = redis.Redis.from_url(url, decode_responses=True)
        self.log = tmp / f"{self.name.split()[0]}.log"

    def write(self, crons: list[Cron]) -> None: ...

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def every(self, seconds: float) -> tuple[list[float], int]:
        """Lateness of the every-2s firings over a window of `seconds`, and how many were
        expected."""
        raise NotImplementedError

    def queued(self, n: int) -> tuple[int, float]:
        """How many of the n due crons are queued, and when the last of them was."""
        raise NotImplementedError

    def change(self, crons: list[Cron], deadline: float) -> float | None:
        raise NotImplementedError

    def start(self, crons: list[Cron], deadline: float) -> bool:
        """Writes the schedules, starts the beat; False if it is not ready by the deadline."""
        self.r.flushall()
        self.write(crons)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.command(), cwd=self.tmp, stdout=out, stderr=out,
                                         env=self.env(), start_new_session=True)
        end = time.monotonic() + deadline
        while not self.ready():
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited with {self.proc.returncode}: see {self.log}")
            if time.monotonic() > end:
                return False
            time.sleep(0.05)
        return True

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None


class Runner(Side):
    name = "runner beat"

    def __init__(self, url: str, tmp: Path) -> None:
        super().__init__(url, tmp)
        self.repo = tmp / "repo"

    def env(self) -> dict[str, str]:
        return {**os.environ, "REDIS_URL": self.url, "RUNNER_CACHE_DIR": str(self.tmp / "cache")}

    def command(self) -> list[str]:
        return [sys.executable, "-m", "runner", "beat", "--repo", str(self.repo)]

    def write(self, crons: list[Cron]) -> None:
        for sub in ("targets.d", "jobs.d", "schedules.d"):
            (self.repo / sub).mkdir(parents=True, exist_ok=True)
        for old in (self.repo / "schedules.d").glob("*.yaml"):
            old.unlink()
        (self.repo / "queues.yaml").write_text(QUEUES)
        (self.repo / "targets.d" / "t.yaml").write_text("targets:\n  here: {transport: local}\n")
        (self.repo / "jobs.d" / "j.yaml").write_text(JOBS)
        (self.repo / "schedules.d" / "tick.yaml").write_text(
            # overlap allow, as Celery's beat (it has no overlap policy): no worker runs here,
            # so the default (forbid) would record each later firing SKIPPED
            dump({"schedules": {"tick": {"job": "tick", "every": "2s", "overlap": "allow"}}}))
        for k in range(0, len(crons), PER_FILE):
            (self.repo / "schedules.d" / f"s-{k // PER_FILE:04d}.yaml").write_text(
                runner_file(crons[k:k + PER_FILE]))

    def ready(self) -> bool:
        return bool(self.r.exists("runner:kv:beat"))

    def records(self, job: str) -> list[dict[str, Any]]:
        pipe = self.r.pipeline(transaction=False)
        for rid in self.r.zrange(f"runner:runs:{job}", 0, -1):
            pipe.hgetall(f"runner:run:{rid!s}")
        return [{k: json.loads(v) for k, v in h.items()} for h in pipe.execute()]

    def every(self, seconds: float) -> tuple[list[float], int]:
        t0 = time.time()
        time.sleep(seconds)  # the window being measured, not a wait for a result
        first = (int(t0 / EVERY) + 1) * EVERY
        last = (int(time.time() / EVERY) - 1) * EVERY  # a firing due then has had 2 s
        late = []
        for rec in self.records("tick"):
            at = datetime.fromisoformat(str(rec["scheduled_for"])).timestamp()
            if first <= at <= last and rec.get("state") not in ("MISSED", "SKIPPED"):
                late.append(float(rec["created"]) - at)
        return late, int((last - first) / EVERY) + 1

    def queued(self, n: int) -> tuple[int, float]:
        if self.r.zcard("runner:runs:daily") < n:
            return 0, 0.0
        recs = [r for r in self.records("daily") if r.get("state") not in ("MISSED", "SKIPPED")]
        return len(recs), max((float(r["created"]) for r in recs), default=0.0)

    def change(self, crons: list[Cron], deadline: float) -> float | None:
        path = self.repo / "schedules.d" / "s-0000.yaml"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(runner_file(crons[:PER_FILE], changed=crons[0][0]))
        t0 = time.time()
        tmp.replace(path)
        end = time.monotonic() + deadline
        while not self.r.zcard("runner:runs:changed"):
            if time.monotonic() > end:
                return None
            time.sleep(0.01)
        return float(self.records("changed")[0]["created"]) - t0


class CeleryBeat(Side):
    name = "celery beat"

    def __init__(self, url: str, tmp: Path) -> None:
        super().__init__(url, tmp)
        self.dir = tmp / "celery"
        self.dir.mkdir(exist_ok=True)

    def env(self) -> dict[str, str]:
        return {**os.environ, "BENCH_REDIS": self.url,
                "BENCH_SCHEDULES": str(self.dir / "schedules.json")}

    def command(self) -> list[str]:
        return [sys.executable, "-m", "celery", "--workdir", str(ROOT / "bench"),
                "-A", "beat_celery", "beat", "-s", str(self.dir / "beat-schedule"), "-l", "WARNING"]

    def write(self, crons: list[Cron]) -> None:
        for old in self.dir.glob("beat-schedule*"):  # a fresh PersistentScheduler file
            old.unlink()
        (self.dir / "schedules.json").write_text(json.dumps({"crons": crons}))

    def ready(self) -> bool:
        return waited(self.r, "every", 0.05)

    def every(self, seconds: float) -> tuple[list[float], int]:
        end = time.time() + seconds
        arrivals = []
        while (left := end - time.time()) > 0:
            with contextlib.suppress(redis.TimeoutError):  # Redis busy (a large flush)
                if self.r.blpop(["every"], timeout=min(1.0, max(0.01, left))):
                    arrivals.append(time.time())
        late = [a - (arrivals[0] + EVERY * i) for i, a in enumerate(arrivals)]
        return late, int(seconds / EVERY)

    def queued(self, n: int) -> tuple[int, float]:
        while True:
            with contextlib.suppress(redis.TimeoutError):  # Redis busy for seconds
                return int(self.r.llen("cron")), time.time()

    def change(self, crons: list[Cron], deadline: float) -> float | None:
        t0 = time.time()
        self.stop()  # Celery's beat reads beat_schedule once, at start
        (self.dir / "schedules.json").write_text(json.dumps(
            {"crons": crons[1:], "changed": crons[0][0]}))
        # the restart keeps the schedule file: the entry keeps its last run, so it is due
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.command(), cwd=self.tmp, stdout=out, stderr=out,
                                         env=self.env(), start_new_session=True)
        if waited(self.r, "changed", deadline):
            return time.time() - t0
        return None


def waited(r: redis.Redis, key: str, seconds: float) -> bool:
    """Whether an item arrives on `key` within `seconds` (BLPOPs of at most 1 s: a Redis
    busy for seconds with 100,000 entries times a read out, which is not the bench's
    business)."""
    end = time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        with contextlib.suppress(redis.TimeoutError):
            if r.blpop([key], timeout=min(1.0, max(0.01, left))):
                return True
        if left <= 0:
            return False


Row = dict[str, float | str | None]  # side -> value; None: did not finish; str: why not


def idle_rows(sides: list[Side], n: int, a: argparse.Namespace,
              last: bool) -> tuple[Row, Row, Row, Row, Row]:
    """CPU %, RSS MB, every-2s p50 and p99 (s) at n schedules; at the largest size, the change
    too (the beat is running already)."""
    cpu: Row = {}
    rss: Row = {}
    p50: Row = {}
    p99: Row = {}
    change: Row = {}
    crons = idle_crons(n, random.Random(n), datetime.now(UTC))
    for side in sides:
        try:
            t = time.monotonic()
            if not side.start(crons, a.deadline):
                print(f"  {side.name} at {n:,}: not ready after {a.deadline:.0f} s", flush=True)
                continue
            print(f"  {side.name} at {n:,}: ready in {time.monotonic() - t:.1f} s", flush=True)
            assert side.proc is not None
            cpu0, t0 = session_cpu(side.proc.pid), time.monotonic()
            late, expected = side.every(a.seconds)
            cpu[side.name] = (session_cpu(side.proc.pid) - cpu0) / (time.monotonic() - t0) * 100
            rss[side.name] = pid_rss_mb(side.proc.pid)
            print(f"  {side.name} at {n:,}: every-2s fired {len(late)}/{expected}", flush=True)
            if len(late) >= expected > 0:
                p50[side.name], p99[side.name] = statistics.median(late), pct(late, 0.99)
            else:
                p50[side.name] = p99[side.name] = f"fired {len(late)}/{expected}"
            if last:
                change[side.name] = side.change(crons, a.deadline)
        finally:
            side.stop()
    return cpu, rss, p50, p99, change


def due_row(sides: list[Side], n: int, a: argparse.Namespace) -> Row:
    """Seconds from the minute n crons are all due until the last of them is queued."""
    out: Row = {}
    for side in sides:
        now = datetime.now(UTC)
        at = (now + timedelta(seconds=a.lead + 60)).replace(second=0, microsecond=0)
        try:
            if not side.start(due_crons(n, at), a.lead):
                print(f"  {side.name}: not ready {a.lead:.0f} s after start", flush=True)
                continue
            end = at.timestamp() + a.deadline
            while (got := side.queued(n))[0] < n and time.time() < end:
                time.sleep(0.02)  # polling with a deadline
            if got[0] >= n:
                out[side.name] = got[1] - at.timestamp()
            print(f"  {side.name}: {got[0]:,}/{n:,} queued", flush=True)
        finally:
            side.stop()
    return out


def show(v: float | str | None, unit: str, deadline: float) -> str:
    if isinstance(v, str):
        return v
    return f"did not finish in {deadline:.0f} s" if v is None else f"{v:.3f} {unit}"


def line(metric: str, n: int, row: Row, unit: str, a: argparse.Namespace,
         goal: float | None = None) -> bool:
    """One metric at one size, side by side; lower is better. True when runner meets `goal`
    (if any) and is better than Celery's beat."""
    r, c = row.get(Runner.name), row.get(CeleryBeat.name)
    better = isinstance(r, float) and (not isinstance(c, float) or r < c)
    ok = better and (goal is None or (isinstance(r, float) and r <= goal))
    judged = (f"<= {goal:g} {unit} and " if goal is not None else "") + "better than celery"
    print(f"{metric:<28} {n:>8,} {show(r, unit, a.deadline):>24} {show(c, unit, a.deadline):>24}"
          f"  {judged}: {'PASS' if ok else 'FAIL'}", flush=True)
    return ok


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,10000,100000",
                   help="schedule counts, comma-separated")
    p.add_argument("--seconds", type=float, default=60.0, help="the idle/lateness window")
    p.add_argument("--deadline", type=float, default=300.0,
                   help="per row and side: seconds to be ready, to queue, to apply a change")
    p.add_argument("--lead", type=float, default=30.0,
                   help="due-at-once: the beat starts at least this long before the minute")
    a = p.parse_args()
    sizes = sorted(int(x) for x in a.sizes.split(","))
    due = min(10_000, sizes[-1])
    with tempfile.TemporaryDirectory(prefix="runner-bench-beat-") as d:
        tmp = Path(d)
        server = start_redis(tmp / "redis")
        try:
            sides: list[Side] = [Runner(server.url, tmp), CeleryBeat(server.url, tmp)]
            idle = {n: idle_rows(sides, n, a, n == sizes[-1]) for n in sizes}
            print(f"due at once: {due:,} crons", flush=True)
            at_once = due_row(sides, due, a)
        finally:
            server.stop()
    print(f"\n{'metric':<28} {'size':>8} {Runner.name:>24} {CeleryBeat.name:>24}  goal")
    oks = []
    for n, (cpu, rss, p50, p99, _) in idle.items():
        top = n == sizes[-1] and n >= 100_000
        oks.append(line("idle CPU (% of a core)", n, cpu, "%", a, 5.0 if top else None))
        oks.append(line("RSS", n, rss, "MB", a))
        oks.append(line("every-2s lateness p50", n, p50, "s", a))
        oks.append(line("every-2s lateness p99", n, p99, "s", a, 1.0 if top else None))
    oks.append(line("due at once: last queued", due, at_once, "s", a, 10.0))
    oks.append(line("one-schedule change applied", sizes[-1], idle[sizes[-1]][4], "s", a, 1.0))
    print(f"goals: {sum(oks)}/{len(oks)} PASS ({'PASS' if all(oks) else 'FAIL'}); the 5% and "
          "p99 <= 1 s goals apply at 100,000 (judged when it is the largest size)")
    print("(CPU: the beat's session from /proc over the window, the every-2s firings included; "
          "RSS: VmRSS at the window's end; lateness: runner created - scheduled_for from its "
          "store, celery arrival on the Redis list - (first arrival + 2 s * i), every firing "
          "due in the window must be there, else 'fired k/n'; "
          "due at once: runner max created, celery the list holding "
          "all messages (20 ms polls), from the minute; change: runner rewrites one schedules "
          "file (read every system.DIR_RELOAD s), celery's beat never re-reads "
          "beat_schedule so it is restarted (SIGTERM to the changed entry's message))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
