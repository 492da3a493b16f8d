"""Notifications of run ends against real receivers on loopback: webhook and Slack format
over HTTP, email over SMTP (aiosmtpd), retries, a receiver that stays down, idempotence, and
`runner notify test`; on both stores."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from runner.config.load import build
from runner.config.model import ConfigSet, notifications
from runner.notify.outbox import look, previous
from runner.runs import RunRecord, RunState, new_run_id
from runner.settings import Settings
from runner.store import Store, keys
from tests.helpers.procs import poll
from tests.helpers.receivers import http_receiver, smtp_receiver
from tests.helpers.repos import small_repo
from tests.servers import free_port

SETTINGS = Settings(public_url="https://runner.example.com", notify_attempts=3,
                    notify_backoff=0.05, notify_timeout=5.0)
ENV = {"RUNNER_SECRET_HOOK": "", "RUNNER_SECRET_SLACK": "", "RUNNER_SECRET_SMTP": ""}
FAILED = {"targets": {"web-1": {"status": "failed", "error": "web-1: exit status 3: disk full"},
                      "web-2": {"status": "success", "error": None}}}


def config(rules: list[dict[str, object]], jobs: tuple[str, ...] = ("backup-db",)) -> ConfigSet:
    channels = {"hook": {"webhook": "env:RUNNER_SECRET_HOOK"},
                "slack": {"slack": "env:RUNNER_SECRET_SLACK"},
                "mail": {"email": ["oncall@example.com"], "smtp": "env:RUNNER_SECRET_SMTP",
                         "from": "runner@example.com"}}
    job = {"queue": "q", "targets": ["here"], "steps": [{"command": "true"}]}
    built = build("rev1", {"jobs": {j: job for j in jobs}})
    object.__setattr__(built, "notifications",
                       notifications({"channels": channels, "rules": rules}))
    return built


def ended(store: Store, state: RunState, job: str = "backup-db",
          result: dict[str, object] | None = None) -> RunRecord:
    record = RunRecord(new_run_id(), job=job, state=state, revision="a" * 40,
                       created=time.time(), finished=time.time(), result=result,
                       error="a target failed" if state == RunState.FAILURE else None)
    store.save_run(record)
    return record


def settle(store: Store, cfg: ConfigSet, env: dict[str, str], deadline: float = 20) -> None:
    """look() until the notify feed is empty (retries are due after their backoff)."""
    def empty() -> bool:
        look(store, cfg, SETTINGS, env)
        return not store.to_publish(10, keys.NOTIFY)
    poll(empty, deadline, "every notification sent or given up")


def test_webhook_and_slack_get_one_message_each_with_the_failed_target(store: Store) -> None:
    cfg = config([{"on": ["failed"], "jobs": ["backup-*"], "channels": ["hook", "slack"]}])
    with http_receiver() as got:
        env = {**ENV, "RUNNER_SECRET_HOOK": got.url("/hook"),
               "RUNNER_SECRET_SLACK": got.url("/slack")}
        run = ended(store, RunState.FAILURE, result=FAILED)
        settle(store, cfg, env)
        look(store, cfg, SETTINGS, env)  # nothing more goes out
    bodies = dict(got.accepted)
    assert sorted(bodies) == ["/hook", "/slack"] and len(got.accepted) == 2
    hook = bodies["/hook"]
    assert hook == {"event": "failed", "job": "backup-db", "run_id": run.run_id,
                    "status": "FAILURE", "error": "a target failed",
                    "failed_targets": {"web-1": "web-1: exit status 3: disk full"},
                    "revision": "a" * 40,
                    "link": f"https://runner.example.com/runs/{run.run_id}"}
    slack = bodies["/slack"]
    assert list(slack) == ["text"]
    assert "job backup-db failed" in slack["text"] and "disk full" in slack["text"]
    assert f"https://runner.example.com/runs/{run.run_id}" in slack["text"]
    tries = (store.run(run.run_id) or run).notifications or ()
    assert sorted((t["channel"], t["event"], t["status"], t["error"]) for t in tries) == [
        ("hook", "failed", "sent", None), ("slack", "failed", "sent", None)]
    assert (store.run(run.run_id) or run).state == RunState.FAILURE


def test_email_reaches_a_real_smtp_server(store: Store) -> None:
    cfg = config([{"on": ["failed"], "channels": ["mail"]}])
    with smtp_receiver() as got:
        env = {**ENV, "RUNNER_SECRET_SMTP": f"smtp://runner:s3cret@127.0.0.1:{got.port}"}
        run = ended(store, RunState.FAILURE, result=FAILED)
        settle(store, cfg, env)
    assert len(got.mails) == 1
    sender, to, text = got.mails[0]
    assert (sender, to) == ("runner@example.com", ["oncall@example.com"])
    assert f"Subject: runner: backup-db failed (run {run.run_id})" in text
    assert "disk full" in text and "s3cret" not in text


def test_a_receiver_failing_twice_gets_the_message_once_on_the_third_try(store: Store) -> None:
    cfg = config([{"on": ["succeeded"], "channels": ["hook"]}])
    with http_receiver(fail=2) as got:
        run = ended(store, RunState.SUCCESS)
        settle(store, cfg, {**ENV, "RUNNER_SECRET_HOOK": got.url()})
    assert got.refused == 2 and len(got.accepted) == 1
    tries = (store.run(run.run_id) or run).notifications or ()
    assert [t["status"] for t in tries] == ["retrying", "retrying", "sent"]
    assert "answered HTTP 500" in str(tries[0]["error"])


def test_a_receiver_down_past_the_retries_is_recorded_and_the_run_untouched(
        store: Store) -> None:
    cfg = config([{"on": ["failed"], "channels": ["hook"]}])
    secret_path = "/hook-token-S3CRET"
    run = ended(store, RunState.FAILURE, result=FAILED)
    settle(store, cfg, {**ENV, "RUNNER_SECRET_HOOK": f"http://127.0.0.1:{free_port()}"
                                                     f"{secret_path}"})
    after = store.run(run.run_id)
    assert after is not None and after.state == RunState.FAILURE
    assert after.error == "a target failed" and after.finished == run.finished
    tries = after.notifications or ()
    assert [t["status"] for t in tries] == ["retrying", "retrying", "failed"]
    assert all("cannot reach 127.0.0.1:" in str(t["error"]) for t in tries)
    assert "S3CRET" not in str(tries)


def test_an_event_of_a_run_goes_out_once_however_often_its_end_is_written(
        store: Store) -> None:
    cfg = config([{"on": ["failed"], "channels": ["hook"]},
                  {"on": ["failed"], "jobs": ["backup-db"], "channels": ["hook"]}])
    with http_receiver() as got:
        env = {**ENV, "RUNNER_SECRET_HOOK": got.url()}
        run = ended(store, RunState.FAILURE)
        settle(store, cfg, env)
        store.update_run(run.run_id, {"state": "FAILURE", "note": "ended again"})
        settle(store, cfg, env)
    assert len(got.accepted) == 1


def test_recovered_goes_by_creation_when_two_ids_share_a_millisecond(store: Store) -> None:
    now = time.time()
    same = f"{int(now * 1000):012x}"  # the ids then sort by their random part, not by time
    for run_id, state, at in ((f"{same}-ffffffff", RunState.FAILURE, now),
                              (f"{same}-00000000", RunState.SUCCESS, now + 0.0005)):
        store.save_run(RunRecord(run_id, job="backup-db", state=state, created=at, finished=at))
    fixed = store.run(f"{same}-00000000")
    assert fixed is not None and previous(store, fixed) == RunState.FAILURE


def test_a_success_after_a_failure_is_recovered(store: Store) -> None:
    cfg = config([{"on": ["recovered"], "channels": ["hook"]}])
    with http_receiver() as got:
        env = {**ENV, "RUNNER_SECRET_HOOK": got.url()}
        ended(store, RunState.FAILURE)
        settle(store, cfg, env)
        fixed = ended(store, RunState.SUCCESS)
        settle(store, cfg, env)
        ended(store, RunState.SUCCESS)  # succeeded after a success: nothing
        settle(store, cfg, env)
    assert [(b["event"], b["run_id"]) for _, b in got.accepted] == [("recovered", fixed.run_id)]


NOTIFICATIONS = """\
channels:
  hook: {webhook: "env:RUNNER_SECRET_HOOK"}
"""


def test_notify_test_sends_a_message_or_exits_1_saying_why(tmp_path: Path) -> None:
    repo = small_repo(tmp_path / "config", "jobs:\n  j: {queue: q, targets: [here], "
                                           "steps: [{command: 'true'}]}\n")
    (repo / "notifications.yaml").write_text(NOTIFICATIONS)

    def notify(*args: str, url: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "RUNNER_SECRET_HOOK": url}
        env.pop("REDIS_URL", None)
        return subprocess.run([sys.executable, "-m", "runner", "notify", "test", *args,
                               "--repo", str(repo)], capture_output=True, text=True,
                              env=env, timeout=60)

    with http_receiver() as got:
        ok = notify("hook", url=got.url())
    assert ok.returncode == 0, ok.stderr
    assert "sent a test message to hook" in ok.stdout
    assert [b["event"] for _, b in got.accepted] == ["test"]
    down = notify("hook", url=f"http://127.0.0.1:{free_port()}/T0K3N")
    assert down.returncode == 1
    assert "channel hook: cannot reach 127.0.0.1:" in down.stderr and "T0K3N" not in down.stderr
    unknown = notify("pager", url=got.url())
    assert unknown.returncode == 2 and "no channel 'pager'" in unknown.stderr
    assert "Traceback" not in ok.stderr + down.stderr + unknown.stderr


def test_a_missed_firing_beat_records_is_announced(store: Store) -> None:
    cfg = config([{"on": ["missed", "skipped"], "channels": ["hook"]}])
    with http_receiver() as got:
        missed = RunRecord(new_run_id(), job="backup-db", state=RunState.MISSED,
                           created=time.time(), schedule="nightly", missed_count=3,
                           error="3 firings of schedule nightly were missed")
        store.save_runs([missed])  # as beat writes them
        settle(store, cfg, {**ENV, "RUNNER_SECRET_HOOK": got.url()})
    assert [(b["event"], b["status"], b["error"]) for _, b in got.accepted] == [
        ("missed", "MISSED", "3 firings of schedule nightly were missed")]
