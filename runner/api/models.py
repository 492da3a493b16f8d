"""What `runner api` answers, as pydantic models: the OpenAPI document's response schemas.

The handlers build plain dicts (from the store, overview.py and the configuration) and send
them as JSON themselves, so these models cost nothing per request; they describe the
responses, and the fuzz test checks every response against them. Fields the store may not
have yet are optional; more fields may appear (additional properties are allowed).
"""

from __future__ import annotations

import http
from typing import Any, Literal

from pydantic import BaseModel, Field

from runner.runs import RunState

NAME = r"^[a-z0-9][a-z0-9._-]{0,62}$"  # a job's name, as a path or query parameter
State = RunState


class Detail(BaseModel):
    """Why a request was refused (4xx) or cannot be served now (503)."""

    detail: str


class Health(BaseModel):
    ok: bool
    store: bool
    broker: Literal["redis", "embedded"] | None = None
    last_reconcile: float | None = None
    applied_revision: str | None = None
    beat_alive: bool | None = None
    error: str | None = Field(None, description="when the store cannot be reached (503)")
    warning: str | None = Field(None, description="the store was wiped in the last day "
                                "(runs queued or running then have no record)")


class Who(BaseModel):
    name: str
    role: Literal["viewer", "operator"]


class Problem(BaseModel):
    file: str
    line: int
    column: int
    message: str


class Status(BaseModel):
    applied_revision: str | None
    attempted_revision: str | None
    applied_at: float | None
    errors: list[Problem] = Field(description="of the attempted revision")
    last_reconcile: float | None
    fetch_error: str | None
    refused: str | None
    source: str | None
    branch: str | None
    broker: Literal["redis", "embedded"]
    suspended: dict[str, Any] = Field(description='{"all": true} or {"schedules": {NAME: …}}')
    beat: dict[str, Any] | None
    beat_alive: bool
    reports: dict[str, Any] = Field(description="the report branch: branch, head, unpushed, "
                                                "last_error, remote")


class Durations(BaseModel):
    count: int
    p50: float
    p95: float
    max: float
    points: list[list[float]] = Field(description="[finished, seconds], oldest first")


class Lateness(BaseModel):
    """Of every schedule firing queued (the store's histogram; p50/p99 estimated from it)."""

    count: int
    sum: float
    p50: float | None
    p99: float | None
    last: float | None = Field(description="seconds late, the last firing queued")
    last_at: float | None = Field(description="when the last firing was queued (UNIX time)")
    buckets: dict[str, int] = Field(description='{"0.1": n, …, "+Inf": n}: cumulative')


class Stats(BaseModel):
    window_minutes: int
    runs: int
    by_state: dict[str, int]
    by_queue: dict[str, dict[str, int]]
    rate_per_minute: float
    per_minute: list[dict[str, int]] = Field(description='{"minute": UNIX_TIME, STATE: n, …}')
    durations: dict[str, Durations]
    truncated: bool
    lateness: dict[str, float] = Field(description="each schedule's last firing: seconds late")
    lateness_histogram: Lateness
    queues: dict[str, list[list[float]]] = Field(description="[unix, length] every 30 s, 3 h")


class LimitEntry(BaseModel):
    run_id: str
    target: str | None = Field(description="None: the run as a whole (its job's max_active)")
    worker: str | None
    since: float | None


class Limit(BaseModel):
    max: int
    held: list[LimitEntry] = Field(description="who holds a slot, oldest first")
    waiting: list[LimitEntry] = Field(description="who waits for one, in order of arrival")


class ActiveRun(BaseModel):
    run_id: str | None
    job: str | None
    started: float | None


class Worker(BaseModel):
    name: str
    hostname: str
    celery_hostname: str
    queues: list[str]
    concurrency: int | None
    active: int
    active_runs: list[ActiveRun]
    processed: int
    load: float | None
    memory_kib: int | None
    pid: int | None
    uptime: float | None
    revision: str | None
    last_heartbeat: float | None


class ConfiguredWorker(BaseModel):
    queues: list[str]
    concurrency: int


class Workers(BaseModel):
    workers: dict[str, Worker] = Field(description="live, by Celery host name")
    configured: dict[str, ConfiguredWorker]


class Queue(BaseModel):
    length: int
    priority: int
    workers: list[str]
    consumers: int


class Retries(BaseModel):
    attempts: int
    backoff: int = Field(description="seconds")


class Job(BaseModel):
    description: str
    queue: str
    targets: list[str] = Field(description="selectors")
    concurrency: int
    timeout: int = Field(description="seconds, per target")
    retries: Retries
    steps: list[str] = Field(description="their names")


class Jobs(BaseModel):
    revision: str
    jobs: dict[str, Job]


class WorkflowInfo(BaseModel):
    description: str
    nodes: int = Field(description="how many")
    schedules: list[str] = Field(description="the schedules that run it")


class Workflows(BaseModel):
    revision: str
    workflows: dict[str, WorkflowInfo]


class WorkflowNode(BaseModel):
    name: str
    kind: Literal["job", "approval"]
    job: str | None
    approval: str | None = Field(description="the question an operator answers")
    limit: str | None = Field(description="a target selector narrowing the job's targets")
    timeout: int | None = Field(description="seconds an approval waits")
    after: list[str]
    when: Literal["on_success", "on_failure", "always"]
    depth: int = Field(description="0 for a root, else 1 + the deepest node of `after`")


class Edge(BaseModel):
    from_: str = Field(alias="from")
    to: str
    when: Literal["on_success", "on_failure", "always"] = Field(description="of `to`")


class WorkflowGraph(BaseModel):
    name: str
    description: str
    schedules: list[str]
    nodes: list[WorkflowNode] = Field(description="in topological order")
    edges: list[Edge]


class Schedule(BaseModel):
    job: str
    when: str
    timezone: str
    overlap: Literal["forbid", "allow", "replace"]
    suspended: bool
    next_fire: str | None
    last_fire: str | None
    last_run_id: str | None


class Action(BaseModel):
    action: str
    by: str
    role: str
    at: float
    via: str


class RunSummary(BaseModel):
    run_id: str
    job: str | None = None
    state: State | None = None
    queue: str | None = None
    trigger: str | None = None
    revision: str | None = None
    worker: str | None = None
    created: float | None = None
    received: float | None = None
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    retry_of: str | None = None
    schedule: str | None = None
    scheduled_for: str | None = None
    limit: str | None = None
    deliveries: int | None = None
    targets: list[str] | None = None
    note: str | None = None
    late: str | None = Field(None, description="when its deadline passed while it was active")
    waiting: list[str] | None = Field(None, description="the limits it waits for a slot of "
                                      "(WAITING; STARTED while another target runs)")


class RunPage(BaseModel):
    runs: list[RunSummary]
    next: str | None = Field(description="pass as `cursor` for the following page")


class TargetResult(BaseModel):
    status: str | None = None
    rc: int | None = None
    stdout: str | None = Field(None, description="the output's tail, secrets masked")
    stderr: str | None = None
    duration: float | None = None
    error: str | None = None


class RunResult(BaseModel):
    status: str | None = None
    targets: dict[str, TargetResult] = {}


class NodeRun(BaseModel):
    state: Literal["pending", "running", "approval", "success", "failed", "skipped",
                   "cancelled"]
    run_id: str | None = Field(None, description="its child run")
    attempt: int = 1
    started_at: float | None = None
    ended_at: float | None = None
    decision: str | None = Field(None, description="approved, rejected, timed out")
    by: str | None = None
    at: float | None = None
    comment: str | None = None


class WorkflowRun(BaseModel):
    workflow: str
    revision: str | None = None
    cancelled: bool = False
    nodes: dict[str, NodeRun]


class Notification(BaseModel):
    channel: str
    event: str
    at: float
    status: Literal["sent", "retrying", "failed"]
    error: str | None = None


class Run(RunSummary):
    actions: list[Action] | None = Field(None, description="who cancelled, retried, started")
    notifications: list[Notification] | None = Field(None, description="each try of a "
                                                     "notification of its end")
    result: RunResult | None = None
    workflow: WorkflowRun | None = Field(None, description="a workflow run's node states")
    parent: str | None = Field(None, description="a child run's workflow run")
    node: str | None = Field(None, description="a child run's node in it")


class Cancelled(BaseModel):
    run_id: str
    previous: State | None
    state: State | None
    cancel_requested: bool


class Retried(BaseModel):
    run_id: str
    retry_of: str
    state: State


class Started(BaseModel):
    run_id: str
    job: str
    state: State


class RunAsked(BaseModel):
    params: dict[str, Any] | None = Field(
        None, description="values for the job's params, of their declared JSON types "
                          "(\"batch\": 3, not \"3\"); the defaults fill in the rest")


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI description of refusals: {"detail": why}."""
    return {code: {"model": Detail, "description": http.HTTPStatus(code).phrase}
            for code in codes}


READ = errors(400, 401, 503)  # 400: a RunnerError; 503: the configuration or store
CONTROL = errors(400, 401, 403, 503)
