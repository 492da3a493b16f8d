"""Every key and lock name runner keeps in its store, named once (arq's constants.py is the
model); entries.py reads and writes the entries.

Entries (`Store.get`/`put`; JSON objects) and tallies are named by the first group; the store
backends' own layout (run records, indexes, the publish feed) by the second.
"""

from __future__ import annotations

# entries and tallies every process reads by name
RECONCILE = "reconcile"    # the reconciler's status: applied/attempted revision, errors
APPLIED = "applied"        # {"revision", "digest"}: small, so every process can look often
GENERATION = "generation"  # {id, created, wiped?}: noticing a wiped store
SUSPENDED = "suspended"    # {"all": {...} | absent, "schedules": {NAME: {...}}}
BEAT = "beat"              # beat's entry; also the name of beat's lock
REPORTS = "reports"        # the report publisher's status
PUBLISHER = "publisher"    # the report publisher's lock
LATENESS = "lateness"      # tally: schedule lateness histogram
SCHEDULE = "schedule:"     # prefix: per-schedule state of beat (entries("schedule:"))
WORKER = "worker:"         # prefix: worker heartbeats
WORKFLOWS = "workflows"    # {"runs": [ids]}: the workflow runs going; also its lock's name
NOTIFIER = "notifier"      # the notification sender's lock
NOTIFY_KEEP = 10000        # the notify feed's newest ids kept: older ones drop (no notifier)
LATE = "late"              # tally: late runs by job (runner_runs_late_total); "late:" entries
APPROVAL = "approval:"     # the notify feed's items of approvals opening (approval())
QUEUE_LENGTHS = "queue-lengths"  # {"points": {QUEUE: [[unix, length], ...]}}: the last 3 h


def schedule(name: str) -> str:
    """Beat's state of schedule `name`."""
    return f"{SCHEDULE}{name}"


def worker(host: str) -> str:
    """The heartbeat entry of the worker on `host`."""
    return f"{WORKER}{host}"


def workflow(run_id: str) -> str:
    """The lock of workflow run `run_id`, held while a process advances it."""
    return f"workflow:{run_id}"


def revision(rev: str) -> str:
    """What the reconciler published of revision `rev`."""
    return f"revision:{rev}"


def definitions(blob: str) -> str:
    """The parsed objects of a configuration file, by its blob id."""
    return f"definitions:{blob}"


def blob(sha: str) -> str:
    """A file's content (base64), by its blob id."""
    return f"blob:{sha}"


def outbox(run_id: str) -> str:
    """The notifications of run `run_id`: {"run_id", "items": [{event, channel, ...}]}."""
    return f"outbox:{run_id}"


def refused(revision: str) -> str:
    """The feed id (and, under outbox(), the entry) of a refused revision's notice."""
    return f"refused:{revision}"


def late(run_id: str) -> str:
    """Who marked run `run_id` late (put_new: its `late` event is fired once); also the
    notifier's feed item of that event (its outbox entry: outbox(late(run_id)))."""
    return f"{LATE}:{run_id}"


def approval(run_id: str, node: str, attempt: int) -> str:
    """The notifier's feed item of an approval node opening (its notifications go to the run's
    outbox entry): its own, added once, so that taking it off the feed never takes off the
    run's end (the run's id) or another approval."""
    return f"{APPROVAL}{run_id}:{node}:{attempt}"


def download(run_id: str, sha256: str) -> str:
    """A file a run downloaded (forget() deletes it with the run)."""
    return f"download:{run_id}:{sha256}"


def output(run_id: str, target: str | None = None) -> str:
    """A running run's output so far: {"targets": [NAME, ...]}, and each target's under
    output(run_id, NAME) (the worker deletes them once the record is final)."""
    return f"output:{run_id}" if target is None else f"output:{run_id}:{target}"


# the backends' layout (Redis: under the prefix; files: folders of the state directory)
RUN = "run:"          # a run record (Redis hash)
RUNS = "runs"         # the index of runs by creation time; "runs:JOB" per job
CANCEL = "cancel:"    # a cancel request
KV = "kv:"            # entries
LOCK = "lock:"        # leases
TALLY = "tally:"      # tallies
PUBLISH = "publish"   # the report publisher's feed of finished runs
NOTIFY = "notify"     # the notifier's feed of finished runs (both feeds: to_publish's `feed`)
EVENTS = "events"     # the channel each run and entry write publishes on
SLOT = "slot:"        # a limit's semaphore (slots.py)
SLOTS = "slots"       # Redis: the names of the limits that have a semaphore
