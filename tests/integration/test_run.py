"""`runner run JOB` as a user runs it: real processes, the local transport, the demo repository."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers.procs import gone, matching, poll, watching
from tests.helpers.repos import add_job, copy_demo, runner_on


def test_demo_job_runs_on_local_targets(tmp_path: Path) -> None:
    repo = copy_demo(tmp_path / "config")
    done = runner_on(repo, "run", "health-check", "--format", "json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result) >= {"run_id", "job", "status", "targets"}
    assert (result["job"], result["status"]) == ("health-check", "success")
    assert set(result["targets"]) == {"localhost", "localhost-batch"}
    for t in result["targets"].values():
        assert set(t) >= {"status", "rc", "stdout", "stderr", "duration", "error"}
        assert (t["status"], t["rc"], t["error"]) == ("success", 0, None)
        assert "Filesystem" in t["stdout"]  # the disk-report script ran
        saved = t["downloads"][0]["saved"]
        assert Path(saved).read_bytes() == (repo / "files" / "motd.txt").read_bytes()
    # plain progress lines on stderr, one per target
    assert done.stderr.count(" ok") == 2


def test_text_report_and_limit(tmp_path: Path) -> None:
    repo = copy_demo(tmp_path / "config")
    done = runner_on(repo, "run", "health-check", "--limit", "localhost")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("ok        localhost rc 0 (")
    assert "localhost-batch" not in done.stdout
    assert lines[-1].startswith("run ") and ": SUCCESS (1 success) in " in lines[-1]


def test_a_failed_target_exits_1_and_the_others_still_report(tmp_path: Path) -> None:
    repo = copy_demo(tmp_path / "config")
    add_job(repo, """jobs:
  half-broken:
    queue: system
    targets: [group:demo]
    steps:
      - {command: 'if [ "$(basename "$PWD")" = never ]; then :; fi; test "$HOME" != /nope'}
      - {command: 'echo only-batch-fails >&2; exit 5', name: check}
      - {command: 'echo reporting failure', when: on_failure}
""")
    done = runner_on(repo, "run", "half-broken", "--format", "json")
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert result["status"] == "failed"
    for name, t in result["targets"].items():
        assert (t["status"], t["rc"]) == ("failed", 5)
        assert t["error"] == f"{name}: step 'check' exited with status 5"
        assert t["stdout"] == "reporting failure\n"
        assert t["stderr"] == "only-batch-fails\n"


def test_local_timeout_kills_the_process_group(tmp_path: Path) -> None:
    repo = copy_demo(tmp_path / "config")
    add_job(repo, """jobs:
  slow:
    queue: system
    targets: [localhost]
    timeout: 1s
    steps:
      - {command: 'sh -c "sleep 44.9" & sleep 44.9'}
""")
    t0 = time.monotonic()
    with watching(os.getpid(), "sleep 44.9") as sleeps:  # the run is this process's child
        done = runner_on(repo, "run", "slow", "--format", "json")
    assert time.monotonic() - t0 < 20
    assert done.returncode == 1
    t = json.loads(done.stdout)["targets"]["localhost"]
    assert t["status"] == "timeout"
    assert t["error"] == "localhost: timed out after 1s in step 'command 1'; its command was killed"
    assert sleeps and gone(sleeps)


def test_ctrl_c_cancels_cleanly(tmp_path: Path) -> None:
    repo = copy_demo(tmp_path / "config")
    add_job(repo, """jobs:
  long:
    queue: system
    targets: [group:demo]
    steps:
      - {command: 'sleep 45.3'}
""")
    proc = subprocess.Popen([sys.executable, "-m", "runner", "run", "long", "--repo", str(repo),
                             "--format", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    sleeps = poll(lambda: matching(proc.pid, "sleep 45.3"), 20, "the job never started")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 1
    assert "Traceback" not in err
    result = json.loads(out)
    assert result["status"] == "cancelled"
    for name, t in result["targets"].items():
        assert t["status"] == "cancelled"
        assert t["error"] == f"{name}: cancelled by Ctrl-C during step 'command 1'"
    assert gone(sleeps)


def test_unknown_job_is_a_usage_error(tmp_path: Path) -> None:
    repo = copy_demo(tmp_path / "config")
    done = runner_on(repo, "run", "health-chek")
    assert done.returncode == 2
    assert "there is no job 'health-chek'; did you mean 'health-check'?" in done.stderr
    done = runner_on(repo, "run", "health-and-restrat")  # a workflow's name, misspelt
    assert done.returncode == 2
    assert "did you mean 'health-and-restart'?" in done.stderr


def test_bad_setting_is_a_usage_error(tmp_path: Path) -> None:
    repo = copy_demo(tmp_path / "config")
    done = runner_on(repo, "run", "health-check", env={"RUNNER_OUTPUT_CAP": "lots"})
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: RUNNER_OUTPUT_CAP='lots' is not a number (or a "
                                   "duration like 30s, 5m)")


def test_output_keeps_the_tail(tmp_path: Path) -> None:
    repo = copy_demo(tmp_path / "config")
    add_job(repo, """jobs:
  chatty:
    queue: system
    targets: [localhost]
    steps:
      - {command: 'seq 1 100000'}
""")
    done = runner_on(repo, "run", "chatty", "--format", "json", env={"RUNNER_OUTPUT_CAP": "1000"})
    assert done.returncode == 0
    out = json.loads(done.stdout)["targets"]["localhost"]["stdout"]
    assert out.startswith("[... 587895 bytes cut ...]\n")
    assert out.endswith("99999\n100000\n")


def test_unreachable_or_malformed_redis_is_an_environment_error(tmp_path: Path) -> None:
    repo = copy_demo(tmp_path / "config")
    for url, words in (("redis://127.0.0.1:1/0", "cannot reach Redis at REDIS_URL="),
                       ("bogus", "REDIS_URL='bogus' is not a Redis URL")):
        done = runner_on(repo, "history", env={"REDIS_URL": url})
        assert done.returncode == 2
        assert done.stderr.startswith(f"error: {words}")
        assert "Traceback" not in done.stderr
