"""The typed configuration: one frozen dataclass per kind, built once per revision.
Builders take schema-valid plain values (see schema.py), so they only convert, never check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from runner.config.http import HttpCheck, http_check
from runner.config.limits import Limit
from runner.config.params import Param, param
from runner.config.values import SecretRef as SecretRef
from runner.config.values import is_secret_ref as is_secret_ref
from runner.config.values import seconds as seconds
from runner.cron import hashed
from runner.schedule import jitter_offset

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
DEFAULT_JOB_TIMEOUT = 600
DEFAULT_JOB_CONCURRENCY = 10
DEFAULT_WORKER_CONCURRENCY = 1


@dataclass(frozen=True)
class Queue:
    """A queue of runs, with the priority its messages are sent at."""

    name: str
    priority: int = 0
    description: str = ""


@dataclass(frozen=True)
class Worker:
    """A worker: the queues it consumes and how many runs at a time."""

    name: str
    queues: tuple[str, ...]
    concurrency: int = DEFAULT_WORKER_CONCURRENCY
    description: str = ""


@dataclass(frozen=True)
class Target:
    """A host jobs run on, and how to reach it (ssh, winrm, local), or an endpoint (http)."""

    name: str
    transport: Literal["ssh", "winrm", "local", "http"] = "ssh"
    host: str | None = None
    port: int | None = None
    user: str | None = None
    key_file: str | None = None
    passphrase: SecretRef | None = None
    password: SecretRef | None = None
    known_hosts: str | None = None
    scheme: str | None = None
    auth: str | None = None
    shell: str | None = None
    base_url: str | None = None  # transport http: what a url starting with '/' is joined to
    groups: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    description: str = ""
    max_runs: int | None = None  # runs at once on it, cluster-wide (None: no limit)


@dataclass(frozen=True)
class Step:
    """One step of a job: a command, a script, an upload, a download or an http request."""

    kind: Literal["command", "script", "upload", "download", "http"]
    name: str
    command: str | None = None
    script: str | None = None
    args: tuple[str, ...] = ()
    shell: str | None = None
    src: str | None = None
    dest: str | None = None
    mode: int | None = None
    max_bytes: int | None = None
    when: Literal["on_success", "on_failure", "always"] = "on_success"
    timeout: int | None = None
    http: HttpCheck | None = None


@dataclass(frozen=True)
class Retries:
    """How often a failed target is tried again, and the backoff between tries."""

    attempts: int = 0
    backoff: int = 10
    max_backoff: int = 600


@dataclass(frozen=True)
class Notify:
    """A notification rule: these events of the jobs matching these globs go to channels."""

    on: tuple[str, ...]
    channels: tuple[str, ...]
    jobs: tuple[str, ...] = ("*",)  # fnmatch globs over job and workflow names


@dataclass(frozen=True)
class Channel:
    """Where messages go (notifications.yaml): a webhook, a Slack webhook or email."""

    name: str
    kind: Literal["webhook", "slack", "email"]
    url: SecretRef  # the webhook's URL, or the SMTP server's (smtp://user:pass@host:port)
    to: tuple[str, ...] = ()  # email: the addresses
    sender: str = "runner@localhost"  # email: the From address


@dataclass(frozen=True)
class Notifications:
    """notifications.yaml: channels by name and the rules."""

    channels: dict[str, Channel] = field(default_factory=dict)
    rules: tuple[Notify, ...] = ()


@dataclass(frozen=True)
class Job:
    """A job: its steps, the targets they run on and the queue it is sent to."""

    name: str
    queue: str
    targets: tuple[str, ...]
    steps: tuple[Step, ...]
    description: str = ""
    concurrency: int = DEFAULT_JOB_CONCURRENCY
    timeout: int = DEFAULT_JOB_TIMEOUT
    retries: Retries = field(default_factory=Retries)
    env: tuple[tuple[str, str | SecretRef], ...] = ()
    notify: tuple[Notify, ...] = ()  # its own `notify:`, besides notifications.yaml's rules
    params: tuple[Param, ...] = ()  # in the order declared
    deadline: int | None = None  # seconds from a run's start: then it is late (celery/late.py)
    max_active: int | None = None  # runs of it at once, cluster-wide (None: no limit)


@dataclass(frozen=True)
class Schedule:
    """When a job (or a workflow) runs by itself (cron, every, at) and what an overlap does."""

    name: str
    job: str  # the name of what it runs: a job, or a workflow when `workflow` is set
    cron: str | None = None
    every: int | None = None
    at: str | None = None
    timezone: str = "UTC"
    overlap: Literal["forbid", "allow", "replace"] = "forbid"
    starting_deadline: int | None = None
    limit: str | None = None
    description: str = ""
    jitter: int = 0  # seconds; each firing is delayed by jitter_offset, in [0, jitter)
    workflow: bool = False  # `job` names a workflow (the schedule was written `workflow:`)
    params: tuple[tuple[str, Any], ...] = ()  # values for the job's params, as written
    deadline: int | None = None  # seconds from the firing: then its run is late
    # Set from the fields above when the schedule is built: what beat and plan fire by.
    hashed_cron: str | None = field(init=False, default=None)  # cron with H resolved
    jitter_offset: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if self.cron is not None:
            object.__setattr__(self, "hashed_cron", hashed(self.cron, self.name))
        object.__setattr__(self, "jitter_offset", jitter_offset(self.name, self.jitter))


When = Literal["on_success", "on_failure", "always"]


@dataclass(frozen=True)
class Node:
    """One node of a workflow: a job (optionally narrowed by `limit`) or an approval question.

    It may start once every node of `after` has ended, if `when` holds of their results:
    on_success (all succeeded), on_failure (any failed), always (any result)."""

    name: str
    job: str | None = None
    approval: str | None = None  # the question an operator approves or rejects
    limit: str | None = None  # a target selector narrowing the job's targets
    timeout: int | None = None  # seconds an approval waits before it counts as rejected
    after: tuple[str, ...] = ()
    when: When = "on_success"
    params: tuple[tuple[str, Any], ...] = ()  # values for the job's params, as written


@dataclass(frozen=True)
class Workflow:
    """Jobs chained into a graph (workflows.d/*.yaml): nodes in the order written."""

    name: str
    nodes: tuple[Node, ...]
    description: str = ""
    notify: tuple[Notify, ...] = ()  # its own `notify:`, besides notifications.yaml's rules


@dataclass(frozen=True)
class Reports:
    """`reports:` of queues.yaml: how the report branch is kept."""

    keep_days: int | None = None  # run directories older than this leave the tip tree


@dataclass(frozen=True)
class ConfigSet:
    """A whole validated configuration at one revision."""

    revision: str
    queues: dict[str, Queue]
    workers: dict[str, Worker]
    targets: dict[str, Target]
    jobs: dict[str, Job]
    schedules: dict[str, Schedule]
    raw: dict[str, dict[str, Any]]  # kind -> name -> the plain value as written (for diff)
    reports: Reports = field(default_factory=Reports)
    workflows: dict[str, Workflow] = field(default_factory=dict)
    notifications: Notifications = field(default_factory=Notifications)
    limits: dict[str, Limit] = field(default_factory=dict)  # queues.yaml's `limits:`


def _str(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def queue(name: str, v: dict[str, Any]) -> Queue:
    """The Queue of a validated queues.yaml entry."""
    return Queue(name, v.get("priority", 0), v.get("description", ""))


def reports(v: dict[str, Any]) -> Reports:
    """The report settings of a validated queues.yaml."""
    return Reports(v.get("keep_days"))


def worker(name: str, v: dict[str, Any]) -> Worker:
    """The Worker of a validated queues.yaml entry."""
    return Worker(name, tuple(v["queues"]), v.get("concurrency", DEFAULT_WORKER_CONCURRENCY),
                  v.get("description", ""))


def target(name: str, v: dict[str, Any]) -> Target:
    """The Target of a validated targets file entry."""
    secrets: dict[str, Any] = {k: SecretRef(v[k]) for k in ("password", "passphrase") if k in v}
    plain: dict[str, Any] = {k: v[k] for k in ("transport", "host", "port", "user", "key_file",
                             "known_hosts", "scheme", "auth", "shell", "base_url",
                             "description", "max_runs") if k in v}
    labels = tuple(sorted((k, _str(x)) for k, x in v.get("labels", {}).items()))
    return Target(name, groups=tuple(v.get("groups", ())), labels=labels, **plain, **secrets)


def step(index: int, v: dict[str, Any]) -> Step:
    """The Step of a validated job's step number `index` (from 0)."""
    kind = next(k for k in ("command", "script", "upload", "download", "http") if k in v)
    transfer: dict[str, Any] = v[kind] if kind in ("upload", "download") else {}
    return Step(
        kind=kind, name=v.get("name") or f"{kind} {index + 1}", command=v.get("command"),
        script=v.get("script"), args=tuple(_str(a) for a in v.get("args", ())),
        shell=v.get("shell"), src=transfer.get("src"), dest=transfer.get("dest"),
        mode=int(transfer["mode"], 8) if transfer.get("mode") else None,
        max_bytes=transfer.get("max_bytes"), when=v.get("when", "on_success"),
        timeout=_optional(v, "timeout"), http=http_check(v["http"]) if kind == "http" else None)


def job(name: str, v: dict[str, Any]) -> Job:
    """The Job of a validated jobs file entry."""
    r = v.get("retries", {})
    retries = Retries(r.get("attempts", 0), seconds(r.get("backoff", 10)),
                      seconds(r.get("max_backoff", 600)))
    env = tuple((k, SecretRef(x) if is_secret_ref(x) else _str(x))
                for k, x in v.get("env", {}).items())
    return Job(name=name, queue=v["queue"], targets=tuple(v["targets"]),
               steps=tuple(step(i, s) for i, s in enumerate(v["steps"])),
               description=v.get("description", ""),
               concurrency=v.get("concurrency", DEFAULT_JOB_CONCURRENCY),
               timeout=seconds(v.get("timeout", DEFAULT_JOB_TIMEOUT)), retries=retries, env=env,
               notify=_notify(v), deadline=_optional(v, "deadline"),
               params=tuple(param(n, x) for n, x in v.get("params", {}).items()),
               max_active=v.get("max_active"))


def _optional(v: dict[str, Any], key: str) -> int | None:
    return seconds(v[key]) if key in v else None  # the duration in seconds; None: not set


def _notify(v: dict[str, Any]) -> tuple[Notify, ...]:
    """A job's or workflow's own `notify:` rules."""
    return tuple(Notify(tuple(n["on"]), tuple(n["channels"])) for n in v.get("notify", ()))


def notifications(v: dict[str, Any]) -> Notifications:
    """The Notifications of a validated notifications.yaml ({} when there is none)."""
    channels = {}
    for name, c in v.get("channels", {}).items():
        kind: Any = next(k for k in ("webhook", "slack", "email") if k in c)
        channels[name] = Channel(name, kind, SecretRef(c["smtp"] if kind == "email" else c[kind]),
                                 tuple(c.get("email", ())), c.get("from", "runner@localhost"))
    return Notifications(channels, tuple(Notify(tuple(r["on"]), tuple(r["channels"]),
                                                tuple(r.get("jobs", ("*",))))
                                         for r in v.get("rules", ())))


def schedule(name: str, v: dict[str, Any]) -> Schedule:
    """The Schedule of a validated schedules file entry."""
    return Schedule(
        name=name, job=v["workflow"] if "workflow" in v else v["job"], cron=v.get("cron"),
        every=seconds(v["every"]) if "every" in v else None, at=v.get("at"),
        timezone=v.get("timezone", "UTC"), overlap=v.get("overlap", "forbid"),
        starting_deadline=_optional(v, "starting_deadline"), deadline=_optional(v, "deadline"),
        limit=v.get("limit"), description=v.get("description", ""),
        jitter=seconds(v.get("jitter", 0)), workflow="workflow" in v,
        params=tuple(v.get("params", {}).items()))


def workflow(name: str, v: dict[str, Any]) -> Workflow:
    """The Workflow of a validated workflows file entry, its nodes in the order written."""
    return Workflow(name, tuple(
        Node(n, job=x.get("job"), approval=x.get("approval"), limit=x.get("limit"),
             timeout=seconds(x["timeout"]) if "timeout" in x else None,
             after=tuple(x.get("after", ())), when=x.get("when", "on_success"),
             params=tuple(x.get("params", {}).items()))
        for n, x in v["nodes"].items()), v.get("description", ""), _notify(v))
