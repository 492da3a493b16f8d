"""Notifications of runs' ends: which events go where (events.py), the message, sending it
(send.py) and the durable outbox the notifier works through (outbox.py)."""
