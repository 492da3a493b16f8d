"""The floor for the Celery benchmark: a hand-written task doing the same work as a trivial
run (start `true` in a subprocess, store a small result in Redis), nothing of runner.

    BENCH_REDIS=redis://... celery -A celery_floor worker -Q floor -c 2 -P prefork
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import redis
from celery import Celery

URL = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")
app = Celery("floor", broker=URL)
app.conf.update(task_serializer="json", accept_content=["json"], task_ignore_result=True,
                task_acks_late=True, worker_prefetch_multiplier=1, task_default_queue="floor")
store = redis.Redis.from_url(URL)


@app.task(name="floor.work")
def work(run_id: str, created: float) -> None:
    started = time.time()
    rc = subprocess.run(["true"], check=False).returncode
    store.set(f"floor:{run_id}", json.dumps({"rc": rc, "created": created, "started": started,
                                             "finished": time.time()}))
