"""Generate a synthetic, valid config repository for benchmarking `runner validate`.

    python bench/gen.py DEST [--jobs N] [--job-files N] [--targets N] [--schedules N] [--seed N]

The output is deterministic for given parameters (including the git commit hash).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

Doc = dict[str, Any]

# role -> group name; targets are named `<role>-<n>` (e.g. web-1)
ROLES = {
    "web": "web",
    "app": "app",
    "db": "databases",
    "cache": "caches",
    "router": "routers",
    "lb": "loadbalancers",
    "batch": "batch",
    "mon": "monitoring",
}
SITES = ["fra", "ams", "nyc", "sfo", "sin"]
TARGET_FILES = 20
SCHEDULE_FILES = 20

SCRIPTS = {
    "files/cleanup.sh": "#!/bin/sh\nset -eu\nfind /tmp -type f -mtime +7 -delete\n",
    "files/deploy.sh": "#!/bin/sh\nset -eu\ncd /opt/app && ./bin/migrate && systemctl reload app\n",
    "files/backup.sh": "#!/bin/sh\nset -eu\ntar czf /var/backups/etc-$(date +%F).tgz /etc\n",
    "files/rotate-logs.sh": "#!/bin/sh\nset -eu\nlogrotate -f /etc/logrotate.conf\n",
    "files/healthcheck.sh": "#!/bin/sh\nset -eu\ncurl -fsS http://localhost:8080/health\n",
    "files/collect-facts.sh": "#!/bin/sh\nuname -a; df -h; free -m\n",
}
DATA_FILES = {
    "files/app.conf": "listen = 8080\nworkers = 4\nlog_level = info\n",
    "files/nginx.conf": "events {}\nhttp { server { listen 80; } }\n",
    "files/motd": "Managed by runner. Local changes will be overwritten.\n",
    "files/sysctl.conf": "vm.swappiness = 10\nnet.core.somaxconn = 4096\n",
}
UPLOADS = [
    ("files/app.conf", "/etc/app.conf"),
    ("files/nginx.conf", "/etc/nginx/nginx.conf"),
    ("files/motd", "/etc/motd"),
    ("files/sysctl.conf", "/etc/sysctl.d/90-bench.conf"),
]
DOWNLOADS = ["/var/log/app.log", "/var/log/syslog", "/etc/os-release", "/var/log/nginx/error.log"]
COMMANDS = [
    "uptime",
    "df -h /",
    "systemctl restart nginx",
    "systemctl is-active app",
    "journalctl -u app --since '1 hour ago' --no-pager | tail -n 50",
    "apt-get -qq update && apt-get -qq -y upgrade",
    'test "$(cat /proc/loadavg | cut -d" " -f1 | cut -d. -f1)" -lt 8',
    "sync; echo 3 > /proc/sys/vm/drop_caches",
    "ls -la /var/backups",
    "echo deployed $APP_VERSION",
]
VERBS = ["deploy", "restart", "rotate", "backup", "check", "sync", "cleanup", "patch", "audit"]
OBJECTS = ["nginx", "postgres", "logs", "certs", "cache", "app", "kernel", "metrics", "dns"]
TIMEOUTS = ["30s", "60s", "90s", "5m", "10m", "1h"]
BACKOFFS = ["5s", "10s", "30s", "1m"]
ENV_VALUES = {
    "LEVEL": ["info", "debug", "warn"],
    "APP_VERSION": ["1.4.2", "2.0.0", "2.1.0-rc1"],
    "DRY_RUN": ["yes", "no"],  # quoted by the dumper, so they stay strings
    "REGION": ["eu-central", "us-east"],
}
CRONS = ["30 2 * * *", "*/15 * * * *", "0 */6 * * *", "0 3 * * 1", "15 4 1 * *", "0 9-17 * * 1-5"]
ZONES = ["Europe/Berlin", "America/New_York", "UTC", "Asia/Tokyo", "Europe/London"]
EVERY = ["30s", "5m", "15m", "1h", "6h"]
OFFSETS = ["+01:00", "+00:00", "-05:00", "+09:00"]


def _dump(doc: Doc) -> str:
    return yaml.dump(
        doc, Dumper=yaml.CSafeDumper, sort_keys=False, width=120, default_flow_style=None
    )


def _chunks(items: list[tuple[str, Doc]], n: int) -> list[dict[str, Doc]]:
    """Split items into n contiguous, evenly sized (+-1) chunks."""
    n = max(1, min(n, len(items))) if items else 1
    return [dict(items[len(items) * k // n : len(items) * (k + 1) // n]) for k in range(n)]


def _targets(rng: random.Random, count: int) -> list[tuple[str, Doc]]:
    roles = list(ROLES)
    out = []
    for i in range(count):
        role = roles[i % len(roles)]
        site = SITES[(i // len(roles)) % len(SITES)]
        env = "staging" if rng.random() < 0.2 else "prod"
        groups = [ROLES[role]] + ([f"{site}-dc"] if rng.random() < 0.5 else [])
        labels = {"role": role, "site": site, "env": env}
        out.append(
            (
                f"{role}-{i // len(roles) + 1}",
                {"transport": "local", "groups": groups, "labels": labels},
            )
        )
    return out


def _selectors(rng: random.Random, target_names: list[str]) -> list[str]:
    pool = [
        lambda: f"label:role={rng.choice(list(ROLES))}",
        lambda: f"label:site={rng.choice(SITES)}",
        lambda: f"group:{rng.choice(list(ROLES.values()))}",
        lambda: rng.choice(target_names),
    ]
    return list(dict.fromkeys(rng.choice(pool)() for _ in range(rng.randint(1, 3))))


def _steps(rng: random.Random) -> list[Doc]:
    steps: list[Doc] = []
    for n in range(rng.randint(3, 6)):
        kind = rng.choices(["command", "script", "upload", "download"], [5, 2, 2, 1])[0]
        if kind == "command":
            steps.append({"name": f"step-{n}", "command": rng.choice(COMMANDS)})
        elif kind == "script":
            steps.append({"name": f"script-{n}", "script": rng.choice(list(SCRIPTS))})
        elif kind == "upload":
            src, dest = rng.choice(UPLOADS)
            steps.append({"upload": {"src": src, "dest": dest}})
        else:
            steps.append({"download": {"src": rng.choice(DOWNLOADS)}})
    if rng.random() < 0.3:
        steps.append({"name": "alert", "command": "echo failed", "when": "on_failure"})
    return steps


def _job(rng: random.Random, name: str, target_names: list[str]) -> Doc:
    job: Doc = {
        "description": f"{name.split('-')[0].capitalize()} {name.split('-')[1]} "
        f"on the {rng.choice(SITES)} fleet",
        "queue": "execution" if rng.random() < 0.8 else "system",
        "targets": _selectors(rng, target_names),
    }
    if rng.random() < 0.6:
        job["concurrency"] = rng.choice([1, 5, 10, 20, 50])
    if rng.random() < 0.7:
        job["timeout"] = rng.choice(TIMEOUTS)
    if rng.random() < 0.4:
        job["retries"] = {"attempts": rng.randint(1, 5), "backoff": rng.choice(BACKOFFS)}
    if rng.random() < 0.5:
        keys = rng.sample(list(ENV_VALUES), rng.randint(1, 3))
        job["env"] = {k: rng.choice(ENV_VALUES[k]) for k in keys}
    job["steps"] = _steps(rng)
    return job


def _schedule(rng: random.Random, job: str) -> tuple[str, Doc]:
    kind = rng.choices(["cron", "every", "at"], [6, 3, 1])[0]
    if kind == "cron":
        doc: Doc = {"job": job, "cron": rng.choice(CRONS)}
        if rng.random() < 0.8:
            doc["timezone"] = rng.choice(ZONES)
        prefix = "nightly"
    elif kind == "every":
        doc, prefix = {"job": job, "every": rng.choice(EVERY)}, "every"
    else:
        day = f"2027-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        at = f"{day}T{rng.randint(0, 23):02d}:{rng.choice(['00', '30'])}:00{rng.choice(OFFSETS)}"
        doc, prefix = {"job": job, "at": at}, "once"
    if rng.random() < 0.3:
        doc["overlap"] = "forbid"
    return prefix, doc


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.write_text(text)
    if mode != 0o644:
        path.chmod(mode)


def _git_commit(dest: Path) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_DATE": "2025-01-01T00:00:00Z",
        "GIT_COMMITTER_DATE": "2025-01-01T00:00:00Z",
    }
    cfg = [
        "-c",
        "user.name=bench",
        "-c",
        "user.email=bench@example.invalid",
        "-c",
        "commit.gpgsign=false",
        "-c",
        "init.defaultBranch=main",
        "-c",
        "core.hooksPath=/dev/null",
    ]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "bench: generated repo"]):
        subprocess.run(["git", *cfg, *args], cwd=dest, env=env, check=True)


def generate(
    dest: Path,
    jobs: int = 10000,
    job_files: int = 1000,
    targets: int = 1000,
    schedules: int = 2000,
    seed: int = 0,
) -> None:
    """Write a valid config repository of the given size into `dest` and git-commit it."""
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} is not empty")
    rng = random.Random(seed)
    for sub in ("targets.d", "jobs.d", "schedules.d", "files"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
    _write(
        dest / "queues.yaml",
        _dump(
            {
                "queues": {"execution": {"priority": 9}, "system": {}},
                "workers": {
                    "execution-worker": {"queues": ["execution"], "concurrency": 4},
                    "system-worker": {"queues": ["system"], "concurrency": 2},
                },
            }
        ),
    )
    for rel, text in SCRIPTS.items():
        _write(dest / rel, text, 0o755)
    for rel, text in DATA_FILES.items():
        _write(dest / rel, text)

    target_items = _targets(rng, targets)
    target_names = [name for name, _ in target_items] or ["localhost"]
    for k, chunk in enumerate(_chunks(target_items, TARGET_FILES)):
        _write(dest / "targets.d" / f"targets-{k:02d}.yaml", _dump({"targets": chunk}))

    job_names = [
        f"{VERBS[i % len(VERBS)]}-{OBJECTS[i // len(VERBS) % len(OBJECTS)]}-{i:05d}"
        for i in range(jobs)
    ]
    job_items = [(name, _job(rng, name, target_names)) for name in job_names]
    for k, chunk in enumerate(_chunks(job_items, job_files)):
        _write(dest / "jobs.d" / f"jobs-{k:04d}.yaml", _dump({"jobs": chunk}))

    unique = schedules <= len(job_names)
    picked = (
        rng.sample(job_names, schedules)
        if unique
        else [rng.choice(job_names) for _ in range(schedules if job_names else 0)]
    )
    sched_items = []
    for i, job in enumerate(picked):
        prefix, doc = _schedule(rng, job)
        sched_items.append((f"{prefix}-{job}" if unique else f"{prefix}-{i:05d}-{job}", doc))
    for k, chunk in enumerate(_chunks(sched_items, SCHEDULE_FILES)):
        _write(dest / "schedules.d" / f"schedules-{k:02d}.yaml", _dump({"schedules": chunk}))
    _git_commit(dest)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dest", type=Path)
    p.add_argument("--jobs", type=int, default=10000)
    p.add_argument("--job-files", type=int, default=1000)
    p.add_argument("--targets", type=int, default=1000)
    p.add_argument("--schedules", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    generate(a.dest, a.jobs, a.job_files, a.targets, a.schedules, a.seed)
    print(f"generated {a.dest} in {time.perf_counter() - t0:.2f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
