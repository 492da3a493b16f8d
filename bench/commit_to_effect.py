"""`make bench`, part 5: commit-to-effect latency of the GitOps loop.

    python bench/commit_to_effect.py [--changes 10]

A running system (`runner reconcile --watch`, `runner beat`, `runner worker w`, embedded store)
follows a configuration repository. Each change is one commit that adds a schedule and assigns
worker `w` one more queue. Measured from the commit (local source) or the `git push` (a bare
remote reached by URL, polled every `--interval 1s`) to beat holding the new schedules (`beat`
entry: loaded_at) and to the worker consuming the new queue (`worker:HOST` entry: matched_at).
Goal: p50 <= 1 s on a local source.
"""

from __future__ import annotations

import argparse
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

from runner.store.files import FileStore  # noqa: E402

GIT = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
TARGETS = "targets:\n  here: {transport: local}\n"
JOBS = "jobs:\n  j: {queue: q0, targets: [here], steps: [{command: 'true'}]}\n"


def queues(n: int) -> str:
    names = [f"q{i}" for i in range(n + 1)]
    return ("queues: {" + ", ".join(f"{q}: {{}}" for q in names) + "}\n"
            f"workers: {{w: {{queues: [{', '.join(names)}], concurrency: 1}}}}\n")


def schedules(n: int) -> str:
    return "schedules:\n" + "".join(f"  s{i}: {{job: j, cron: '0 0 1 1 *'}}\n"
                                    for i in range(n + 1))


def write(repo: Path, n: int) -> None:
    for d in ("targets.d", "jobs.d", "schedules.d"):
        (repo / d).mkdir(parents=True, exist_ok=True)
    (repo / "targets.d" / "t.yaml").write_text(TARGETS)
    (repo / "jobs.d" / "j.yaml").write_text(JOBS)
    (repo / "queues.yaml").write_text(queues(n))
    (repo / "schedules.d" / "s.yaml").write_text(schedules(n))


def git(repo: Path, *args: str) -> str:
    return subprocess.run([*GIT, "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def poll(what: str, check: Any, deadline: float = 30.0) -> Any:
    end = time.monotonic() + deadline
    while not (value := check()):
        if time.monotonic() > end:
            raise SystemExit(f"{what}: not within {deadline}s")
        time.sleep(0.005)
    return value


def measure(tmp: Path, remote: bool, changes: int) -> dict[str, list[float]]:
    name = "remote" if remote else "local"
    work = tmp / f"{name}-work"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    write(work, 0)
    git(work, "add", "-A")
    git(work, "commit", "-qm", "start")
    source = str(work)
    if remote:  # a URL, so the reconciler polls it as it would a remote host
        bare = tmp / f"{name}.git"
        subprocess.run([*GIT, "clone", "-q", "--bare", str(work), str(bare)], check=True)
        git(work, "remote", "add", "origin", str(bare))
        source = bare.as_uri()
    home = tmp / f"{name}-home"  # where runner keeps .runner/ (beat and worker read the store)
    write(home, 0)
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["RUNNER_CACHE_DIR"] = str(tmp / "cache")
    base = [sys.executable, "-m", "runner"]
    commands = [[*base, "reconcile", "--watch", "--source", source, "--interval", "1s"],
                [*base, "beat"], [*base, "worker", "w"]]
    log = open(tmp / f"{name}.log", "wb")  # noqa: SIM115
    procs = [subprocess.Popen([*c, "--repo", str(home)], env=env, stdout=log, stderr=log,
                              start_new_session=True) for c in commands]
    store = FileStore(home / ".runner" / "state")
    out: dict[str, list[float]] = {"beat": [], "worker": []}
    try:
        head = git(work, "rev-parse", "HEAD")
        poll("the first revision reaches beat",
             lambda: (store.get("beat") or {}).get("revision") == head, 60)
        host = poll("the worker reports", lambda: [
            n[len("worker:"):-len(".json")] for n in os.listdir(store.root / "kv")
            if n.startswith("worker:")], 60)[0]
        for i in range(1, changes + 1):
            write(work, i)
            git(work, "add", "-A")
            if remote:
                git(work, "commit", "-qm", f"change {i}")
                t0 = time.time()
                git(work, "push", "-q", "origin", "main")
            else:
                t0 = time.time()
                git(work, "commit", "-qm", f"change {i}")
            head = git(work, "rev-parse", "HEAD")
            beat = poll(f"change {i} reaches beat", lambda h=head: (
                b if (b := store.get("beat") or {}).get("revision") == h else None))
            worker = poll(f"change {i} reaches the worker", lambda h=head: (
                w if (w := store.get(f"worker:{host}") or {}).get("revision") == h else None))
            assert f"q{i}" in worker["queues"] and f"s{i}" in beat["schedules"]
            out["beat"].append(beat["loaded_at"] - t0)
            out["worker"].append(worker["matched_at"] - t0)
            time.sleep(0.3)  # let the watcher settle between changes (not a wait for a result)
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        log.close()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--changes", type=int, default=10)
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="runner-bench-gitops-") as d:
        rows = [("local source, --watch", measure(Path(d), False, a.changes)),
                ("remote URL, --interval 1s", measure(Path(d), True, a.changes))]
    print(f"\n{'source':<28} {'effect':<8} {'p50 s':>6} {'p90 s':>6} {'max s':>6}  goal")
    for name, out in rows:
        for effect, values in out.items():
            values = sorted(values)
            p50 = statistics.median(values)
            goal = ("" if "remote" in name else
                    f"p50 <= 1 s: {'PASS' if p50 <= 1.0 else 'FAIL'}")
            print(f"{name:<28} {effect:<8} {p50:>6.2f} "
                  f"{values[min(len(values) - 1, int(len(values) * 0.9))]:>6.2f} "
                  f"{values[-1]:>6.2f}  {goal}")
    print(f"({a.changes} commits each adding a schedule and a queue for worker w; embedded store; "
          "from the commit or push to beat holding the schedule and the worker consuming the "
          "queue)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
