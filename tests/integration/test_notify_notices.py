"""The notices that are not a run's end, and the outbox's hygiene, on both stores: an approval
waiting is announced once per node and attempt; a refused commit once, however often the
reconciler polls it, to the rules of every job only; a forgotten run takes its outbox entry
and its feed mark along; the notify feed keeps its newest ids when no notifier reads it; a
workflow ending while its approval is being sent is announced too."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from celery import Celery

from runner.celery import coordinate
from runner.config.load import build
from runner.config.model import ConfigSet, notifications
from runner.notify import outbox
from runner.notify.outbox import look
from runner.ops.workflows import approve
from runner.reconcile import reconcile
from runner.runs import RunRecord, RunState, new_run_id
from runner.settings import Settings
from runner.store import Store, keys
from runner.store.files import FileStore
from tests.helpers.procs import poll
from tests.helpers.receivers import http_receiver
from tests.helpers.repos import Commit

SETTINGS = Settings(public_url="https://runner.example.com", notify_attempts=2,
                    notify_backoff=0.05, notify_timeout=5.0)
JOB = {"queue": "q", "targets": ["here"], "steps": [{"command": "true"}]}
FLOW = {"nodes": {"build": {"job": "web"}, "ship": {"approval": "Ship it?", "after": ["build"]}}}


def config(rules: list[dict[str, object]]) -> ConfigSet:
    built = build("rev1", {"jobs": {"web": JOB}, "workflows": {"gate-release": FLOW}})
    object.__setattr__(built, "notifications", notifications({
        "channels": {"hook": {"webhook": "env:RUNNER_SECRET_HOOK"},
                     "slack": {"slack": "env:RUNNER_SECRET_SLACK"}}, "rules": rules}))
    return built


def settle(store: Store, cfg: ConfigSet, env: dict[str, str]) -> None:
    """look() until the notify feed is empty."""
    def empty() -> bool:
        look(store, cfg, SETTINGS, env)
        return not store.to_publish(10, keys.NOTIFY)
    poll(empty, 20, "every notification sent or given up")


def waiting(store: Store, run_id: str, attempt: int, state: RunState = RunState.STARTED) -> None:
    """The workflow run's record with node ship waiting (attempt), announced as the
    coordinator does."""
    nodes = {"build": {"state": "success", "attempt": 1, "run_id": "c1"},
             "ship": {"state": "approval", "attempt": attempt, "started_at": time.time()}}
    flow = {"workflow": "gate-release", "nodes": nodes}
    if store.run(run_id) is None:
        store.save_run(RunRecord(run_id, job="gate-release", state=state, created=time.time(),
                                 workflow=flow))
    else:
        store.update_run(run_id, {"state": state, "workflow": flow, **(
            {"finished": time.time()} if state != RunState.STARTED else {})})
    store.to_notify(keys.approval(run_id, "ship", attempt), time.time())


def test_an_approval_is_announced_once_per_node_and_attempt(store: Store) -> None:
    cfg = config([{"on": ["approval", "failed"], "jobs": ["gate-*"], "channels": ["hook"]},
                  {"on": ["approval"], "jobs": ["web"], "channels": ["slack"]}])
    run_id = new_run_id()
    with http_receiver() as got:
        env = {"RUNNER_SECRET_HOOK": got.url("/hook"), "RUNNER_SECRET_SLACK": got.url("/s")}
        waiting(store, run_id, 1)
        settle(store, cfg, env)
        waiting(store, run_id, 1)  # announced again, still waiting: nothing new
        settle(store, cfg, env)
        waiting(store, run_id, 2)  # a retry asks again
        settle(store, cfg, env)
        waiting(store, run_id, 2, RunState.FAILURE)  # its end still goes out
        settle(store, cfg, env)
    assert [(p, b["event"], b.get("node")) for p, b in got.accepted] == [
        ("/hook", "approval", "ship"), ("/hook", "approval", "ship"), ("/hook", "failed", None)]
    first = got.accepted[0][1]
    assert first == {"event": "approval", "workflow": "gate-release", "run_id": run_id,
                     "node": "ship", "question": "Ship it?",
                     "approve": f"runner approve {run_id} ship", "revision": None,
                     "link": f"https://runner.example.com/runs/{run_id}"}
    tries = (store.run(run_id) or RunRecord(run_id)).notifications or ()
    assert [(t["event"], t.get("node"), t["status"]) for t in tries] == [
        ("approval", "ship", "sent"), ("approval", "ship", "sent"), ("failed", None, "sent")]


def test_a_refused_commit_is_noted_once_and_heard_by_the_rules_of_every_job(
        demo_repo: Path, commit: Commit, tmp_path: Path) -> None:
    store = FileStore(tmp_path / "state")
    mirror = tmp_path / "mirror.git"
    assert reconcile(store, str(demo_repo), "main", mirror).applied
    bad = commit({"schedules.d/bad.yaml": "schedules:\n  bad: {job: health-check, "
                  "every: often}\n"}, "typo")
    cfg = config([{"on": ["refused"], "channels": ["hook"]},
                  {"on": ["refused"], "jobs": ["web", "gate-*"], "channels": ["slack"]}])
    with http_receiver() as got:
        env = {"RUNNER_SECRET_HOOK": got.url("/hook"), "RUNNER_SECRET_SLACK": got.url("/s")}
        for _ in range(2):  # the reconciler polls the same bad head again
            assert not reconcile(store, str(demo_repo), "main", mirror).applied
            assert store.to_publish(10, keys.NOTIFY) == [keys.refused(bad)]
        settle(store, cfg, env)
        assert not reconcile(store, str(demo_repo), "main", mirror).applied
        assert store.to_publish(10, keys.NOTIFY) == []
    assert [p for p, _ in got.accepted] == ["/hook"]
    sent = got.accepted[0][1]
    assert sent["event"] == "refused" and sent["revision"] == bad and sent["subject"] == "typo"
    assert "<" in sent["author"] and sent["link"] == "https://runner.example.com/"
    assert sent["errors"][0].startswith("schedules.d/bad.yaml:2:") and "is invalid" in \
        sent["reason"]
    entry = store.get(keys.outbox(keys.refused(bad))) or {}
    assert [(t["channel"], t["status"]) for t in entry["notifications"]] == [("hook", "sent")]


def test_a_forgotten_run_takes_its_outbox_entry_and_feed_mark_along(store: Store) -> None:
    cfg = config([{"on": ["succeeded"], "channels": ["hook"]}])
    sent, unsent = (RunRecord(new_run_id(), job="web", state=RunState.SUCCESS,
                              created=time.time(), finished=time.time()) for _ in range(2))
    with http_receiver() as got:
        store.save_run(sent)
        settle(store, cfg, {"RUNNER_SECRET_HOOK": got.url()})
    store.save_run(unsent)  # no notifier reads it
    late = keys.late(sent.run_id)  # it was late once: celery/late.py's mark and notice
    store.put(late, {"at": 1.0})
    store.put(keys.outbox(late), {"run_id": sent.run_id, "items": []})
    store.to_notify(late, time.time())
    store.published([late], keys.NOTIFY)
    store.to_notify(keys.late(unsent.run_id), time.time())
    assert store.get(keys.outbox(sent.run_id)) is not None
    assert store.to_publish(10, keys.NOTIFY) == [unsent.run_id, keys.late(unsent.run_id)]
    store.published([sent.run_id, unsent.run_id])  # on the report branch: may be forgotten
    assert store.forget(time.time() + 1) == (2, 2)
    assert [store.get(k) for k in (keys.outbox(sent.run_id), late, keys.outbox(late))] == [
        None, None, None]
    assert store.to_publish(10, keys.NOTIFY) == []


def test_the_notify_feed_keeps_its_newest_ids_when_nobody_reads_it(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys, "NOTIFY_KEEP", 5)
    now = time.time()
    runs = [RunRecord(new_run_id(now + i), job="web", state=RunState.FAILURE, created=now + i,
                      finished=now + i) for i in range(100)]
    store.save_runs(runs)
    assert store.to_publish(1000, keys.NOTIFY) == [r.run_id for r in runs[-5:]]
    assert len(store.to_publish(1000)) == 100  # the report feed is not the notifier's


def test_a_workflow_ending_while_its_approval_is_sent_is_announced_too(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator rejects during the approval's send: the run's end joins the feed in the
    middle of the notifier's pass, which then takes the approval's item off."""
    cfg = config([{"on": ["approval", "failed"], "jobs": ["gate-*"], "channels": ["hook"]}])
    app = Celery("t")  # no node left starts a job: nothing is sent to a broker
    run_id = new_run_id()  # its job node ended: the coordinator opens the approval next
    store.save_run(RunRecord(run_id, job="gate-release", state=RunState.STARTED,
                             created=time.time(), workflow={"workflow": "gate-release", "nodes": {
                                 "build": {"state": "success", "attempt": 1, "run_id": "c1"}}}))
    real = outbox.send

    def send_then_reject(*args: object) -> None:
        real(*args)  # type: ignore[arg-type]
        if (store.run(run_id) or RunRecord(run_id)).state == RunState.STARTED:
            approve(store, lambda: (app, cfg), run_id, "ship", False, "bob")

    monkeypatch.setattr(outbox, "send", send_then_reject)
    with http_receiver() as got:
        coordinate.advance(store, app, cfg, run_id)  # the approval opens
        settle(store, cfg, {"RUNNER_SECRET_HOOK": got.url("/hook")})
    assert (store.run(run_id) or RunRecord(run_id)).state == RunState.FAILURE
    assert [(b["event"], b["run_id"]) for _, b in got.accepted] == [
        ("approval", run_id), ("failed", run_id)]
