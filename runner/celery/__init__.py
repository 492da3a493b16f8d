"""The processes on Celery: the app (app.py), its one task and how runs are queued (tasks.py),
the worker's hot reload (worker.py), beat and its Celery scheduler (beat.py, scheduler.py,
handoff.py, lease.py, reaper.py, late.py), the brokers (fsbroker.py, redis_broker.py), the export
(export.py). Nothing is imported here: `runner.celery.X` loads only X."""
