"""Which events a run's end has, which channels they go to (rules and a job's notify:, each
(event, channel) once), and the message."""

from __future__ import annotations

from runner.config.load import build
from runner.config.model import ConfigSet, notifications
from runner.notify.events import events, message, refusal, routes, text
from runner.runs import RunRecord, RunState

JOB = {"queue": "q", "targets": ["here"], "steps": [{"command": "true"}]}


def config(rules: list[dict[str, object]], notify: list[dict[str, object]] | None = None
           ) -> ConfigSet:
    jobs = {"backup-db": {**JOB, "notify": notify or []}, "web": JOB}
    flows = {"nightly": {"nodes": {"a": {"job": "web"}}, "notify": notify or []}}
    built = build("rev", {"jobs": jobs, "workflows": flows})
    object.__setattr__(built, "notifications", notifications({
        "channels": {c: {"webhook": f"env:RUNNER_SECRET_{c.upper()}"} for c in ("a", "b")},
        "rules": rules}))
    return built


def test_the_events_of_each_end() -> None:
    def of(state: RunState, before: RunState | None = None) -> list[str]:
        return events(RunRecord("r", job="j", state=state), before)
    assert of(RunState.SUCCESS) == ["succeeded"]
    assert of(RunState.SUCCESS, RunState.FAILURE) == ["succeeded", "recovered"]
    assert of(RunState.SUCCESS, RunState.SUCCESS) == ["succeeded"]
    assert of(RunState.FAILURE, RunState.FAILURE) == ["failed"]
    assert of(RunState.REVOKED) == ["cancelled"]
    assert of(RunState.MISSED) == ["missed"] and of(RunState.SKIPPED) == ["skipped"]
    assert of(RunState.STARTED) == [] and of(RunState.PENDING) == []


def test_routes_follow_globs_and_notify_and_never_repeat() -> None:
    cfg = config([{"on": ["failed"], "channels": ["a"]},
                  {"on": ["failed", "recovered"], "jobs": ["backup-*"], "channels": ["a", "b"]}],
                 notify=[{"on": ["failed"], "channels": ["b"]}])
    assert routes(cfg, "backup-db", ["failed"]) == [("failed", "a"), ("failed", "b")]
    assert routes(cfg, "web", ["failed"]) == [("failed", "a")]
    assert routes(cfg, "web", ["succeeded"]) == []
    assert routes(cfg, "nightly", ["failed"]) == [("failed", "a"), ("failed", "b")]  # its notify
    assert routes(cfg, "backup-db", ["succeeded", "recovered"]) == [("recovered", "a"),
                                                                   ("recovered", "b")]


def test_the_message_names_the_failed_targets_and_links_the_run() -> None:
    record = RunRecord("0190-ab", job="backup-db", state=RunState.FAILURE, revision="c" * 40,
                       error="1 of 2 targets failed",
                       result={"targets": {"db-1": {"status": "failed",
                                                    "error": "db-1: exit status 2: no space"},
                                           "db-2": {"status": "success"}}})
    m = message(record, "failed", "https://runner.example.com")
    assert m["failed_targets"] == {"db-1": "db-1: exit status 2: no space"}
    assert m["link"] == "https://runner.example.com/runs/0190-ab"
    assert text(m).splitlines() == [
        "runner: job backup-db failed (run 0190-ab, FAILURE)", "error: 1 of 2 targets failed",
        "target db-1 failed: db-1: exit status 2: no space", "config revision: cccccccccccc",
        "https://runner.example.com/runs/0190-ab"]
    assert message(record, "failed", "")["link"] is None


def test_approval_and_refused_read_as_text_and_refused_hears_only_rules_of_every_job() -> None:
    cfg = config([{"on": ["refused"], "channels": ["a"]},
                  {"on": ["refused"], "jobs": ["backup-*", "web"], "channels": ["b"]}])
    assert routes(cfg, None, ["refused"]) == [("refused", "a")]
    flow = RunRecord("0190-cd", job="nightly", state=RunState.STARTED)
    asked = message(flow, "approval", "https://r.example.com", "ship", "Ship it?")
    assert text(asked).splitlines() == [
        "runner: workflow nightly waits for approval of node ship (run 0190-cd)",
        "question: Ship it?",
        "an operator approves: runner approve 0190-cd ship (or --reject), or in the dashboard",
        "https://r.example.com/runs/0190-cd"]
    no = refusal({"revision": "d" * 40, "author": "Ann <ann@example.com>", "subject": "typo",
                  "reason": "revision dddddddddddd is invalid (1 errors)",
                  "errors": ["a.yaml:2:3: error: bad"]}, "")
    assert text(no).splitlines() == [
        "runner: revision dddddddddddd by Ann <ann@example.com> refused: revision "
        "dddddddddddd is invalid (1 errors)", "a.yaml:2:3: error: bad"]
