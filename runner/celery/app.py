"""The Celery app, built by create_app(system) — no module-level app, no current_app.

Broker: Redis when REDIS_URL is set, else kombu's filesystem transport under the state
directory (the embedded default: no server; fanout, hence remote control, since kombu 5.3).
Celery's own result backend is off: run records live in runner's store (state.py).
One task, runner.run_job(job, revision, run_id, limit), sent under the job's name (Celery's
`shadow`: what Flower and `celery events` show); a router function sends it to the job's queue
with a message priority from the queue's priority, read from the configuration. runner/app.py
is this app for Celery's own command line (`celery -A runner.app ...`).
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from runner.adapters.redis_url import broker_url, transport_options
from runner.celery.message import MAX_PRIORITY, TASK, time_limit
from runner.celery.queueing import entry_job
from runner.celery.tasks import register
from runner.config.model import ConfigSet
from runner.errors import BrokerError
from runner.store.outage import connection_error
from runner.system import System


def broker_options(system: System, config: ConfigSet) -> tuple[str, dict[str, Any]]:
    """The broker URL and transport options: Redis when REDIS_URL is set, else the embedded."""
    longest = max((time_limit(j, len(config.targets)) for j in config.jobs.values()),
                  default=3600)
    if system.settings.redis_url:
        return broker_url(system.settings.redis_url), {
            "visibility_timeout": 2 * longest,  # never redeliver a run that is still going
            "priority_steps": list(range(MAX_PRIORITY + 1)),
            "queue_order_strategy": "priority",
            **transport_options(system.settings.redis_url)}  # Sentinel: master_name
    for d in ("queue", "processed", "control"):
        (system.broker_dir / d).mkdir(parents=True, exist_ok=True)
    q = str(system.broker_dir / "queue")
    return "", {
        "data_folder_in": q, "data_folder_out": q,
        "processed_folder": str(system.broker_dir / "processed"),
        "control_folder": str(system.broker_dir / "control"), "polling_interval": 0.05}


def create_app(system: System, config: ConfigSet | None = None) -> Celery:
    """The Celery app of `system`, routing runs by `config` (default: the one it runs)."""
    config = config or system.config()
    app = Celery("runner", set_as_current=False)
    url, options = broker_options(system, config)

    def route(name: str, args: Any, kwargs: Any, options: Any, task: Any = None,
              **kw: Any) -> dict[str, Any] | None:
        if name != TASK:
            return None
        current = app.conf.runner_config
        job = entry_job(current, kwargs["job"])  # a workflow's: its first job node's
        if job is None:
            return None
        # kombu's Redis transport pops priority 0 first, across all of a worker's queues
        return {"queue": job.queue, "priority": MAX_PRIORITY - current.queues[job.queue].priority}

    app.conf.update(
        broker_url=url or None, broker_transport_options=options,
        # embedded: kombu's filesystem transport, writing messages atomically (fsbroker.py)
        # Redis: kombu's, riding out an outage with runs in flight (redis_broker.py)
        broker_transport=("runner.celery.redis_broker:Transport" if url.startswith("redis://")
                          else "runner.celery.redis_broker:SentinelTransport"
                          if url.startswith("sentinel://")
                          else None if url else "runner.celery.fsbroker:Transport"),
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a Redis outage is waited out, however long
        task_serializer="json", accept_content=["json"], result_serializer="json",
        task_ignore_result=True, result_backend=None, result_expires=7 * 86400,
        task_acks_late=True, task_reject_on_worker_lost=False, worker_prefetch_multiplier=1,
        task_routes=(route,), task_default_queue="runner-default",
        # task events cost a publish per state change: off, as in Celery; Flower turns them on
        # at run time (`celery -A runner.app control enable_events`)
        worker_hijack_root_logger=False, worker_send_task_events=False,
        task_send_sent_event=False, worker_cancel_long_running_tasks_on_connection_loss=False,
        runner_config=config, runner_system=system)
    register(app, system)
    return app


def worker_hostname(name: str) -> str:
    """The Celery hostname of worker `name` in this process: NAME-PID@HOST."""
    return f"{name}-{os.getpid()}@%h"


def queue_length(app: Celery, queue: str) -> int:
    """Messages waiting in `queue` (all priorities), as the broker's transport counts them."""
    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=0)  # a broker away is an answer, not a wait
            # not passive: on Redis and the filesystem transport a declare only counts (it
            # creates nothing), and a passive one refuses an empty Redis queue (no key)
            return int(conn.default_channel.queue_declare(queue=queue).message_count)
    except Exception as e:
        if not connection_error(e):
            raise
        where = "Redis" if app.conf.broker_url else "the embedded broker"
        raise BrokerError(f"{where} cannot be reached to count queue {queue!r}: {e}; "
                          "start it (runner up) or check REDIS_URL") from None
