"""The whole path under `runner up` (issue 21's done-when): a failing scheduled job run by a
real worker sends exactly one message on each channel (webhook, Slack format, email), with
the failed target's error and a dashboard link that works, and the tries land in the run
record; a workflow waiting for an approval says so once; an invalid commit sends `refused`
once, with the commit and its first error."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from runner.runs import RunState
from runner.store import open_store
from tests.helpers.procs import poll
from tests.helpers.receivers import Http, http_receiver, smtp_receiver
from tests.helpers.repos import Commit, git, runner_on
from tests.servers import free_port, runner_up

NOTIFICATIONS = """\
channels:
  hook: {webhook: "env:RUNNER_SECRET_HOOK"}
  slack: {slack: "env:RUNNER_SECRET_SLACK"}
  mail: {email: [oncall@example.com], smtp: "env:RUNNER_SECRET_SMTP", from: runner@example.com}
rules:
  - {on: [failed], jobs: ["notify-*"], channels: [slack, mail]}
  - {on: [refused], channels: [hook]}
  - {on: [approval], jobs: ["gate-*"], channels: [hook]}
"""
JOB = """\
jobs:
  notify-fail:
    queue: system
    targets: [localhost]
    notify: [{on: [failed, succeeded], channels: [hook]}]
    steps: [{command: "echo 'disk full on /var' >&2; exit 3"}]
  gate-first: {queue: system, targets: [localhost], steps: [{command: "true"}]}
"""
GATE = """\
workflows:
  gate-release:
    nodes:
      first: {job: gate-first}
      ship: {approval: "Ship it?", after: [first]}
"""


def _events(web: Http, event: str) -> list[tuple[str, Any]]:
    return [(p, b) for p, b in web.accepted if p == "/hook" and b.get("event") == event]


def test_a_failing_scheduled_run_under_up_sends_one_message_per_channel_then_refused(
        demo_repo: Path, commit: Commit, tmp_path: Path) -> None:
    # beat fires a new schedule's instants from when it sees it: up starts meanwhile (it
    # took 10 s on a loaded 2-core machine), and the approval below is seen to meanwhile
    at = (datetime.now(UTC) + timedelta(seconds=25)).isoformat(timespec="seconds")
    commit({"notifications.yaml": NOTIFICATIONS, "jobs.d/notify.yaml": JOB,
            "workflows.d/gate.yaml": GATE,
            "schedules.d/notify.yaml": f"schedules:\n  once: {{job: notify-fail, at: '{at}'}}\n"},
           "notify on failure")
    port = free_port()
    with http_receiver() as web, smtp_receiver() as smtp:
        env = {**{k: v for k, v in os.environ.items() if k != "REDIS_URL"},
               "RUNNER_SECRET_HOOK": web.url("/hook"), "RUNNER_SECRET_SLACK": web.url("/slack"),
               "RUNNER_SECRET_SMTP": f"smtp://127.0.0.1:{smtp.port}",
               "RUNNER_PUBLIC_URL": f"http://127.0.0.1:{port}",
               "RUNNER_CACHE_DIR": str(tmp_path / "cache")}
        with runner_up(demo_repo, tmp_path / "up.log", env=env, api_port=port):
            store = open_store("", demo_repo / ".runner")
            gate = runner_on(demo_repo, "run", "gate-release", "--enqueue", env=env)
            assert gate.returncode == 0, gate.stderr
            gate_id = gate.stdout.split()[-1]

            def tried() -> Any:
                record = next((r for r in store.runs("notify-fail", 5)
                               if r.schedule == "once"), None)
                return record if record and len(record.notifications or ()) >= 3 else None
            record = poll(tried, 90, "three notifications of the scheduled run tried")
            run_id = record.run_id
            assert record.state == RunState.FAILURE
            assert sorted((t["channel"], t["status"]) for t in record.notifications or ()) == [
                ("hook", "sent"), ("mail", "sent"), ("slack", "sent")]
            # the link opens the dashboard, whose API knows the run
            token = (demo_repo / ".runner" / "api-token").read_text().strip()
            with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as api:
                page = api.get(f"http://127.0.0.1:{port}/runs/{run_id}")
                assert page.status_code == 200 and "<title>runner</title>" in page.text
                known = api.get(f"http://127.0.0.1:{port}/api/runs/{run_id}")
                assert known.status_code == 200 and known.json()["state"] == "FAILURE"
            # the publisher held the run's commit until its notifications were settled
            def committed() -> str | None:
                tree = subprocess.run(["git", "-C", str(demo_repo), "ls-tree", "-r",
                                       "--name-only", "reports"], capture_output=True, text=True)
                return next((p for p in tree.stdout.split()
                             if p.endswith(f"{run_id}/result.json")), None)
            path = poll(committed, 60, "the run on the report branch")
            reported = json.loads(git(demo_repo, "show", f"reports:{path}"))
            assert [t["status"] for t in reported["notifications"]] == ["sent"] * 3
            approval = poll(lambda: _events(web, "approval"), 30, "the approval notice")
            # an invalid commit: refused, once, with the commit and its first error
            bad = commit({"schedules.d/bad.yaml": "schedules:\n  bad: {job: notify-fail, "
                          "every: often}\n"}, "typo")
            refused = poll(lambda: _events(web, "refused"), 30, "the refused notice")
            again = runner_on(demo_repo, "reconcile", "--once", "--source", str(demo_repo),
                              env=env)  # the same bad head polled again: no second notice
            assert again.returncode == 1, again.stderr

            def audited() -> Any:  # runner status shows the notice's tries
                shown = runner_on(demo_repo, "status", "--format", "json", env=env)
                notice = json.loads(shown.stdout)["refusal"] if shown.returncode == 0 else None
                return notice if notice and notice["notifications"] else None
            notice = poll(audited, 30, "the refused notice's try in runner status")
            assert [(t["channel"], t["status"]) for t in notice["notifications"]] == [
                ("hook", "sent")] and notice["revision"] == bad
        log = (tmp_path / "up.log").read_text()
        assert "Traceback" not in log, log[-3000:]
    assert len(_events(web, "refused")) == 1 and len(_events(web, "approval")) == 1
    (_, gated), (_, no) = approval[0], refused[0]
    assert (gated["workflow"], gated["run_id"], gated["node"], gated["question"]) == (
        "gate-release", gate_id, "ship", "Ship it?")
    assert gated["link"] == f"http://127.0.0.1:{port}/runs/{gate_id}"
    assert no["revision"] == bad and no["author"] and no["errors"][0].startswith(
        "schedules.d/bad.yaml:2:")
    fails = [(p, b) for p, b in web.accepted if b.get("event", "failed") == "failed"]
    assert sorted(p for p, _ in fails) == ["/hook", "/slack"]
    hook, slack = (body for _, body in sorted(fails, key=lambda a: a[0]))
    assert hook["event"] == "failed" and hook["run_id"] == run_id
    why = "localhost: step 'command 1' exited with status 3"  # the target's one-sentence error
    assert hook["failed_targets"] == {"localhost": why}
    assert hook["link"] == f"http://127.0.0.1:{port}/runs/{run_id}"
    assert why in slack["text"] and f"/runs/{run_id}" in slack["text"]
    assert len(smtp.mails) == 1 and why in smtp.mails[0][2]
