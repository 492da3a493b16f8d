"""The whole path under `runner up`: a failing job run by a real worker sends exactly one
message on each channel (webhook, Slack format, email), with the failed target's error and
a dashboard link, and the tries land in the run record."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from runner.runs import RunState
from runner.store import open_store
from tests.helpers.procs import poll
from tests.helpers.receivers import http_receiver, smtp_receiver
from tests.helpers.repos import Commit, git, runner_on
from tests.servers import runner_up

NOTIFICATIONS = """\
channels:
  hook: {webhook: "env:RUNNER_SECRET_HOOK"}
  slack: {slack: "env:RUNNER_SECRET_SLACK"}
  mail: {email: [oncall@example.com], smtp: "env:RUNNER_SECRET_SMTP", from: runner@example.com}
rules:
  - {on: [failed], jobs: ["notify-*"], channels: [slack, mail]}
"""
JOB = """\
jobs:
  notify-fail:
    queue: system
    targets: [localhost]
    notify: [{on: [failed, succeeded], channels: [hook]}]
    steps: [{command: "echo 'disk full on /var' >&2; exit 3"}]
"""


def test_a_failing_run_under_up_sends_one_message_per_channel(
        demo_repo: Path, commit: Commit, tmp_path: Path) -> None:
    commit({"notifications.yaml": NOTIFICATIONS, "jobs.d/notify.yaml": JOB}, "notify on failure")
    with http_receiver() as web, smtp_receiver() as smtp:
        env = {**{k: v for k, v in os.environ.items() if k != "REDIS_URL"},
               "RUNNER_SECRET_HOOK": web.url("/hook"), "RUNNER_SECRET_SLACK": web.url("/slack"),
               "RUNNER_SECRET_SMTP": f"smtp://127.0.0.1:{smtp.port}",
               "RUNNER_PUBLIC_URL": "http://127.0.0.1:8080/",
               "RUNNER_CACHE_DIR": str(tmp_path / "cache")}
        with runner_up(demo_repo, tmp_path / "up.log", env=env):
            queued = runner_on(demo_repo, "run", "notify-fail", "--enqueue", env=env)
            assert queued.returncode == 0, queued.stderr
            run_id = queued.stdout.split()[-1]
            store = open_store("", demo_repo / ".runner")

            def tried() -> bool:
                record = store.run(run_id)
                return record is not None and len(record.notifications or ()) >= 3
            poll(tried, 90, "three notifications tried")
            record = store.run(run_id)
            assert record is not None and record.state == RunState.FAILURE
            assert sorted((t["channel"], t["status"]) for t in record.notifications or ()) == [
                ("hook", "sent"), ("mail", "sent"), ("slack", "sent")]
            # the publisher held the run's commit until its notifications were settled
            def committed() -> str | None:
                tree = subprocess.run(["git", "-C", str(demo_repo), "ls-tree", "-r",
                                       "--name-only", "reports"], capture_output=True, text=True)
                return next((p for p in tree.stdout.split()
                             if p.endswith(f"{run_id}/result.json")), None)
            path = poll(committed, 60, "the run on the report branch")
            reported = json.loads(git(demo_repo, "show", f"reports:{path}"))
            assert [t["status"] for t in reported["notifications"]] == ["sent"] * 3
        log = (tmp_path / "up.log").read_text()
        assert "Traceback" not in log, log[-3000:]
    assert sorted(path for path, _ in web.accepted) == ["/hook", "/slack"]
    hook, slack = (body for _, body in sorted(web.accepted, key=lambda a: a[0]))
    assert hook["event"] == "failed" and hook["run_id"] == run_id
    why = "localhost: step 'command 1' exited with status 3"  # the target's one-sentence error
    assert hook["failed_targets"] == {"localhost": why}
    assert hook["link"] == f"http://127.0.0.1:8080/#run={run_id}"
    assert why in slack["text"] and f"#run={run_id}" in slack["text"]
    assert len(smtp.mails) == 1 and why in smtp.mails[0][2]
