"""What operators look at, shared by `runner status` and `runner api`: the revisions, the
schedules with their next firing, the jobs, the queues, the workers (Celery remote control,
refreshed in the background so many readers cost one broadcast), run statistics and the
Prometheus exposition.

`stats` and `metrics_text` are pure: they take run summaries, counters and the clock.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kombu.exceptions import KombuError

from runner.config.model import ConfigSet
from runner.desired import next_fires, when
from runner.errors import RunnerError
from runner.ops.lateness import metric_lines
from runner.runs import ACTIVE, FINAL, RunRecord
from runner.store import Store, keys
from runner.store.entries import (
    ReconcileStatus,
    Suspended,
    WorkerHeartbeat,
    read_reconcile,
    read_suspended,
    read_worker,
    read_workers,
)
from runner.store.outage import connection_error

BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
log = logging.getLogger("runner.api")
STALE = 10.0  # seconds without a heartbeat after which a worker entry is not shown
WATCHED = 60.0  # seconds after a read of the workers view during which it stays fresh
BEAT_ALIVE = 30.0  # seconds: beat writes its entry on a new revision; its lock lease is 5 s
REPORT_FIELDS = ("branch", "head", "unpushed", "last_error", "remote")  # of publish's status
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s]*@")


def shown(value: Any) -> Any:
    """`value` (a JSON-like status) with the user and password of every URL in it as `***`:
    a git source or remote may carry a token, which no reader of the API may learn."""
    if isinstance(value, str):
        return _USERINFO.sub(r"\1***@", value)
    if isinstance(value, dict):
        return {k: shown(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shown(v) for v in value]
    return value


def reports(status: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the API shows of the report publisher's status (not its paths on this host)."""
    return {k: shown(v) for k, v in (status or {}).items() if k in REPORT_FIELDS}


def revisions(store: Store) -> dict[str, Any]:
    """The applied and the attempted revision, their errors and the last reconcile."""
    rec = read_reconcile(store) or ReconcileStatus()
    return {"applied_revision": rec.applied_revision,
            "attempted_revision": rec.attempted_revision, "applied_at": rec.applied_at,
            "errors": list(rec.errors or ()), "last_reconcile": rec.last_reconcile,
            "fetch_error": rec.fetch_error, "refused": rec.refused,
            "source": rec.source, "branch": rec.branch}


def schedules(store: Store, config: ConfigSet,
              now: datetime | None = None) -> dict[str, dict[str, Any]]:
    """Each schedule's next firing (after `now`), last handled firing and last run id."""
    now = now or datetime.now(UTC)
    paused = read_suspended(store) or Suspended()
    out = {}
    for name, s in config.schedules.items():
        state = store.get(keys.schedule(name)) or {}
        nxt = next_fires(s, now, 1)
        out[name] = {"job": s.job, "when": when(s), "timezone": s.timezone,
                     "overlap": s.overlap,
                     "suspended": paused.holds(name),
                     "next_fire": nxt[0].isoformat() if nxt else None,
                     "last_fire": state.get("last_fire"),
                     "last_run_id": state.get("last_run_id")}
    return out


def jobs(config: ConfigSet) -> dict[str, dict[str, Any]]:
    """Each job as the API and the dashboard show it."""
    return {name: {"description": j.description, "queue": j.queue, "targets": list(j.targets),
                   "concurrency": j.concurrency, "timeout": j.timeout,
                   "retries": {"attempts": j.retries.attempts, "backoff": j.retries.backoff},
                   "steps": [s.name for s in j.steps]}
            for name, j in sorted(config.jobs.items())}


def queues(config: ConfigSet, length: Callable[[str], int],
           workers: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each queue's length, priority, configured workers and live consumers."""
    return {q: {"length": length(q), "priority": info.priority,
                "workers": sorted(w.name for w in config.workers.values() if q in w.queues),
                "consumers": sum(1 for w in workers.values() if q in w.get("queues", ()))}
            for q, info in sorted(config.queues.items(), key=lambda kv: -kv[1].priority)}


@dataclass
class Workers:
    """The live workers, from Celery remote control (stats, active, active_queues) and their
    store entries (worker:HOST), refreshed by one background thread every `every` seconds
    while someone looks (a read of the view in the last WATCHED seconds, or `watched()`: live
    event clients), else every `idle_every` seconds — three broadcasts every 2 s were most of
    an idle system's CPU. Readers never wait for a broadcast and never multiply them; the
    first read after a quiet spell wakes the thread."""

    inspect: Callable[[], AbstractContextManager[Any]]  # a celery Inspect on its own connection
    store: Store
    every: float = 2.0
    on_change: Callable[[dict[str, Any]], None] | None = None
    watched: Callable[[], bool] = lambda: False
    idle_every: float = 60.0
    _view: dict[str, dict[str, Any]] = field(default_factory=dict)
    _at: float = 0.0
    _read: float = -WATCHED
    _stop: threading.Event = field(default_factory=threading.Event)
    _wake: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def view(self) -> dict[str, dict[str, Any]]:
        now = time.monotonic()
        if now - self._read > WATCHED:
            self._wake.set()
        self._read = now
        return self._view

    def refresh(self) -> dict[str, dict[str, Any]]:
        def ask(method: str) -> dict[str, Any]:
            try:
                with self.inspect() as i:
                    return dict(getattr(i, method)() or {})
            except Exception as e:  # the heartbeats below still show the workers
                if not connection_error(e):
                    raise
                log.warning("workers: remote control (%s) failed: %s", method, e)
                return {}

        with ThreadPoolExecutor(3) as ex:  # three broadcasts at once: one timeout, not three
            stats, active, consuming = ex.map(ask, ("stats", "active", "active_queues"))
        now = time.time()
        view = {}
        beating = {host: e for host, e in read_workers(self.store).items()
                   if not e.stopped and now - float(e.heartbeat or 0) < STALE}
        for host in sorted(set(stats) | set(consuming) | set(beating)):
            s = stats.get(host) or {}
            pool = s.get("pool") or {}
            size = pool.get("max-concurrency") or len(pool.get("processes") or []) or None
            runs = [{"run_id": t.get("id"), "job": (t.get("kwargs") or {}).get("job"),
                     "started": t.get("time_start")} for t in active.get(host, [])]
            entry = beating.get(host) or read_worker(self.store, host) or WorkerHeartbeat()
            queues = ([q["name"] for q in consuming[host]] if host in consuming
                      else entry.queues or [])  # remote control did not answer in time
            view[host] = {
                "name": entry.name or host.split("@")[0].rsplit("-", 1)[0],
                "hostname": host.rpartition("@")[2], "celery_hostname": host,
                "queues": sorted(queues),
                "concurrency": entry.concurrency or size,
                "active": len(runs), "active_runs": runs,
                "processed": sum((s.get("total") or {}).values()),
                "load": round(len(runs) / size, 3) if size else None,
                "memory_kib": (s.get("rusage") or {}).get("maxrss"),
                "pid": s.get("pid"), "uptime": s.get("uptime"),
                "revision": entry.revision,
                "last_heartbeat": now if host in stats else entry.heartbeat}
        changed = _shape(view) != _shape(self._view)
        self._view, self._at = view, now
        if changed and self.on_change:
            self.on_change(view)
        return view

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.refresh()
                except (OSError, KombuError, RunnerError) as e:  # keeps the last view
                    log.warning("workers: remote control failed: %s", e)
                except Exception:  # a bug must not freeze the view for good: logged, retried
                    log.exception("workers: refreshing the view failed; trying again")
                looked = time.monotonic() - self._read <= WATCHED or self.watched()
                self._wake.wait(self.every if looked else self.idle_every)
                self._wake.clear()

        self._thread = threading.Thread(target=loop, name="runner-api-workers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()


def _shape(view: Mapping[str, Mapping[str, Any]]) -> list[Any]:
    """What a change of the workers view is: hosts, queues, active runs, processed."""
    return [(h, w["queues"], w["active"], w["processed"], w["concurrency"])
            for h, w in sorted(view.items())]


def stats(summaries: Iterable[RunRecord], now: float, minutes: int) -> dict[str, Any]:
    """Runs created in the last `minutes`: per state, per queue and state, per minute and
    state, the rate over the last 5 minutes, and run durations per job."""
    start = now - minutes * 60
    by_state: Counter[str] = Counter()
    by_queue: dict[str, Counter[str]] = defaultdict(Counter)
    per_minute: dict[int, Counter[str]] = defaultdict(Counter)
    durations: dict[str, list[tuple[float, float]]] = defaultdict(list)
    recent = 0
    for r in summaries:
        created = float(r.created or 0)
        if created < start:
            continue
        state = str(r.state or r.extra.get("state"))  # extra: a later version's state
        by_state[state] += 1
        by_queue[str(r.queue or "-")][state] += 1
        per_minute[int(created // 60 * 60)][state] += 1
        recent += created >= now - 300
        if r.started and r.finished:
            took = float(r.finished) - float(r.started)
            durations[str(r.job)].append((float(r.finished), round(took, 3)))
    return {
        "window_minutes": minutes, "runs": sum(by_state.values()),
        "by_state": dict(by_state),
        "by_queue": {q: dict(c) for q, c in sorted(by_queue.items())},
        "rate_per_minute": round(recent / min(5.0, minutes), 3),
        "per_minute": [{"minute": m, **dict(c)} for m, c in sorted(per_minute.items())],
        "durations": {job: _summary(sorted(points)) for job, points in sorted(durations.items())},
    }


def _summary(points: list[tuple[float, float]]) -> dict[str, Any]:
    took = sorted(p[1] for p in points)
    return {"count": len(took), "p50": _quantile(took, 0.5), "p95": _quantile(took, 0.95),
            "max": took[-1], "points": [list(p) for p in points[-500:]]}


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass
class RunMetrics:
    """Counters since this process started, fed by run events: finished runs by job and
    state, and their durations as histograms (Prometheus counters: monotonic)."""

    totals: Counter[tuple[str, str]] = field(default_factory=Counter)
    buckets: dict[str, list[int]] = field(default_factory=dict)
    sums: dict[str, float] = field(default_factory=dict)
    seen: dict[str, None] = field(default_factory=dict)  # final run ids counted (bounded)

    def observe(self, run: Mapping[str, Any]) -> None:
        rid, state = str(run.get("run_id")), str(run.get("state"))
        if state not in FINAL or rid in self.seen:
            return
        self.seen[rid] = None
        if len(self.seen) > 100_000:
            self.seen.pop(next(iter(self.seen)))
        job = str(run.get("job"))
        self.totals[(job, state)] += 1
        if run.get("started") and run.get("finished"):
            took = float(run["finished"]) - float(run["started"])
            counts = self.buckets.setdefault(job, [0] * (len(BUCKETS) + 1))
            for i, bound in enumerate((*BUCKETS, math.inf)):
                counts[i] += took <= bound
            self.sums[job] = self.sums.get(job, 0.0) + took


def metrics_text(m: RunMetrics, active: Mapping[str, int], queue_lengths: Mapping[str, int],
                 workers: int, status: Mapping[str, Any], now: float,
                 lateness: Mapping[str, float]) -> str:
    """The Prometheus text exposition format (version 0.0.4)."""
    out: list[str] = []

    def family(name: str, kind: str, text: str) -> None:
        out.extend((f"# HELP {name} {text}", f"# TYPE {name} {kind}"))

    family("runner_runs_total", "counter", "Runs that ended, by job and state, since the API "
                                           "process started.")
    for (job, state), n in sorted(m.totals.items()):
        out.append(f'runner_runs_total{{job="{_esc(job)}",state="{state}"}} {n}')
    family("runner_run_duration_seconds", "histogram", "Run durations (started to finished).")
    for job, counts in sorted(m.buckets.items()):
        for bound, n in zip((*BUCKETS, math.inf), counts, strict=True):
            le = "+Inf" if bound == math.inf else repr(bound)
            out.append(f'runner_run_duration_seconds_bucket{{job="{_esc(job)}",le="{le}"}} {n}')
        out.append(f'runner_run_duration_seconds_sum{{job="{_esc(job)}"}} {m.sums[job]:.6f}')
        out.append(f'runner_run_duration_seconds_count{{job="{_esc(job)}"}} {counts[-1]}')
    out.extend(metric_lines(lateness))
    family("runner_runs_active", "gauge", "Runs queued or running, by state (newest 10,000).")
    for state in ACTIVE:
        out.append(f'runner_runs_active{{state="{state}"}} {active.get(state, 0)}')
    family("runner_queue_length", "gauge", "Messages waiting per queue.")
    for q, n in sorted(queue_lengths.items()):
        out.append(f'runner_queue_length{{queue="{_esc(q)}"}} {n}')
    family("runner_workers", "gauge", "Workers answering remote control.")
    out.append(f"runner_workers {workers}")
    family("runner_reconcile_errors", "gauge", "Errors of the last attempted revision.")
    out.append(f"runner_reconcile_errors {len(status.get('errors') or [])}")
    family("runner_reconcile_ok", "gauge",
           "1 when the attempted revision is the applied one and could be fetched.")
    ok = (status.get("attempted_revision") == status.get("applied_revision")
          and not status.get("fetch_error") and not status.get("refused"))
    out.append(f"runner_reconcile_ok {int(bool(ok and status.get('applied_revision')))}")
    family("runner_reconcile_last_timestamp_seconds", "gauge", "When the last reconcile ran.")
    out.append(f"runner_reconcile_last_timestamp_seconds {status.get('last_reconcile') or 0}")
    family("runner_applied_revision_age_seconds", "gauge",
           "Seconds since the applied revision was applied.")
    applied = status.get("applied_at")
    out.append(f"runner_applied_revision_age_seconds {now - applied if applied else 'NaN'}")
    family("runner_applied_revision_info", "gauge", "The applied revision, as a label.")
    out.append(f'runner_applied_revision_info{{revision="'
               f'{_esc(str(status.get("applied_revision") or ""))}"}} 1')
    return "\n".join(out) + "\n"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
