"""`runner reconcile --once` against real git repositories: apply, no-op, refuse, rewrite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from runner.store.files import FileStore
from tests.helpers.cluster import reconcile_status
from tests.helpers.procs import poll
from tests.helpers.repos import copy_demo, git
from tests.servers import keygen, runner_up


def runner(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runner", *args, "--repo", str(state)],
                          capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "REDIS_URL"})


def test_apply_noop_refuse_fix_and_rewrite(
        demo_repo: Path, commit: Callable[[dict[str, str | None], str], str],
        tmp_path: Path) -> None:
    state = copy_demo(tmp_path / "runner-home")  # where runner keeps .runner/, not the source
    src = str(demo_repo)
    first = git(demo_repo, "rev-parse", "HEAD")
    done = runner(state, "reconcile", "--once", "--source", src)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"main at {first[:12]}: applied"
    s = reconcile_status(state)
    assert (s["applied_revision"], s["attempted_revision"], s["errors"]) == (first, first, [])
    store = FileStore(state / ".runner" / "state")
    published = store.get(f"revision:{first}") or {}
    health = store.get(f"definitions:{published['config']['jobs.d/health.yaml']}") or {}
    assert list(health["objects"]) == ["jobs/health-check"]
    script = published["files"]["files/disk-report.sh"]
    assert script["mode"] == 0o755 and store.get(f"blob:{script['blob']}")

    again = runner(state, "reconcile", "--once", "--source", src)
    assert again.stdout.strip() == f"main at {first[:12]}: unchanged"

    bad = commit({"jobs.d/broken.yaml": "jobs:\n  broken: {queue: nowhere, targets: [x], "
                                        "steps: [{command: true}]}\n"}, "break it")
    refused = runner(state, "reconcile", "--once", "--source", src)
    assert refused.returncode == 1
    assert refused.stdout.startswith("jobs.d/broken.yaml:2:")
    assert f"revision {bad[:12]} is invalid" in refused.stderr
    s = reconcile_status(state)
    assert (s["applied_revision"], s["attempted_revision"]) == (first, bad)
    assert s["errors"][0]["file"] == "jobs.d/broken.yaml"
    shown = json.loads(runner(state, "status", "--format", "json").stdout)
    assert (shown["applied_revision"], shown["attempted_revision"]) == (first, bad)
    assert shown["errors"] == s["errors"]

    fixed = commit({"jobs.d/broken.yaml": None}, "fix it")
    assert runner(state, "reconcile", "--once", "--source", src).returncode == 0
    assert reconcile_status(state)["applied_revision"] == fixed

    git(demo_repo, "reset", "-q", "--hard", first)  # history rewritten under the runner
    rewritten = commit({"files/motd.txt": "rewritten\n"}, "rewrite")
    done = runner(state, "reconcile", "--once", "--source", src)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"main at {rewritten[:12]}: applied"


def test_unreachable_source_keeps_the_applied_revision(demo_repo: Path, tmp_path: Path) -> None:
    state = copy_demo(tmp_path / "runner-home")
    assert runner(state, "reconcile", "--once", "--source", str(demo_repo)).returncode == 0
    gone = runner(state, "reconcile", "--once", "--source", str(tmp_path / "nowhere"))
    assert gone.returncode == 2
    assert gone.stderr.startswith(f"error: cannot fetch branch 'main' from {tmp_path}/nowhere")
    s = reconcile_status(state)
    assert s["applied_revision"] == git(demo_repo, "rev-parse", "HEAD")
    assert s["fetch_error"].startswith("cannot fetch branch 'main'")


def test_watch_sees_a_ref_change_that_raised_no_file_event(demo_repo: Path,
                                                            tmp_path: Path) -> None:
    """A commit made before the watch was up, or one the watch missed, is still applied
    within seconds (not at the next --interval): here the branch moves inside packed-refs,
    which is outside the watched refs/ directory."""

    state = copy_demo(tmp_path / "runner-home")
    with open(tmp_path / "reconcile.log", "wb") as log:
        watch = subprocess.Popen([sys.executable, "-m", "runner", "reconcile", "--watch",
                                  "--source", str(demo_repo), "--interval", "5m", "--repo",
                                  str(state)], stdout=log, stderr=log,
                                 env={k: v for k, v in os.environ.items() if k != "REDIS_URL"})
    try:
        head = git(demo_repo, "rev-parse", "HEAD")
        poll(lambda: reconcile_status(state).get("applied_revision") == head, 60, "HEAD applied")
        git(demo_repo, "pack-refs", "--all")  # the branch now lives in .git/packed-refs
        new = git(demo_repo, "commit-tree", "HEAD^{tree}", "-p", "HEAD", "-m", "moved")
        packed = demo_repo / ".git" / "packed-refs"
        packed.write_text(packed.read_text().replace(f"{head} refs/heads/main",
                                                     f"{new} refs/heads/main"))
        assert git(demo_repo, "rev-parse", "main") == new
        poll(lambda: reconcile_status(state).get("applied_revision") == new, 10, "the move applied")
    finally:
        watch.terminate()
        watch.wait(30)


def test_workers_run_the_applied_revision_and_its_files(
        demo_repo: Path, commit: Callable[[dict[str, str | None], str], str],
        tmp_path: Path) -> None:

    state = copy_demo(tmp_path / "runner-home")  # knows nothing of the job below
    commit({"files/only-in-git.sh": "#!/bin/sh\necho from the applied revision\n",
            "jobs.d/git.yaml": "jobs:\n  from-git: {queue: system, targets: [localhost], "
                               "steps: [{script: files/only-in-git.sh}]}\n"}, "add a job")
    assert runner(state, "reconcile", "--once", "--source", str(demo_repo)).returncode == 0
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    with open(tmp_path / "worker.log", "wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "runner", "worker", "system-worker",
                                   "--repo", str(state)], env=env, stdout=log, stderr=log,
                                  start_new_session=True)
    try:
        poll(lambda: b" ready." in (tmp_path / "worker.log").read_bytes(), 60, "worker ready")
        done = runner(state, "run", "from-git", "--enqueue", "--wait", "--format", "json")
        assert done.returncode == 0, done.stdout + done.stderr
        record = json.loads(done.stdout)
        assert record["revision"] == git(demo_repo, "rev-parse", "HEAD")
        target = record["targets"]["localhost"]
        assert target["stdout"] == "from the applied revision\n"
    finally:
        os.killpg(worker.pid, 9)
        worker.wait(10)


def test_a_queued_run_executes_the_revision_that_triggered_it(
        demo_repo: Path, commit: Callable[[dict[str, str | None], str], str],
        tmp_path: Path) -> None:

    state = copy_demo(tmp_path / "runner-home")

    def pinned(word: str) -> str:
        return commit({"files/say.sh": f"#!/bin/sh\necho {word} script\n",
                       "jobs.d/pinned.yaml": "jobs:\n  pinned: {queue: system, targets: "
                       f"[localhost], steps: [{{command: echo {word}}}, "
                       "{script: files/say.sh}]}\n"}, f"say {word}")

    def enqueue() -> str:
        done = runner(state, "run", "pinned", "--enqueue")
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    first = pinned("first")
    assert runner(state, "reconcile", "--once", "--source", str(demo_repo)).returncode == 0
    early = enqueue()  # queued under the first revision; no worker yet
    second = pinned("second")
    assert runner(state, "reconcile", "--once", "--source", str(demo_repo)).returncode == 0
    late = enqueue()
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    store = FileStore(state / ".runner" / "state")
    with open(tmp_path / "worker.log", "wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "runner", "worker", "system-worker",
                                   "--repo", str(state)], env=env, stdout=log, stderr=log,
                                  start_new_session=True)
    try:
        for run_id, revision, word in ((early, first, "first"), (late, second, "second")):
            record = poll(lambda r=run_id: (x := store.run(r)) and x.state == "SUCCESS"
                          and x, 60, f"run {run_id} succeeds")
            assert record.revision == revision
            assert record.result["targets"]["localhost"]["stdout"] == (
                f"{word}\n{word} script\n")
    finally:
        os.killpg(worker.pid, 9)
        worker.wait(10)


def test_up_applies_a_pushed_schedule_within_seconds(
        demo_repo: Path, commit: Callable[[dict[str, str | None], str], str]) -> None:
    import time


    commit({"schedules.d/ops.yaml": None}, "no demo schedules: only this test's fire")
    with runner_up(demo_repo, demo_repo.parent / "up.log"):
        store = FileStore(demo_repo / ".runner" / "state")
        first = git(demo_repo, "rev-parse", "HEAD")
        poll(lambda: (store.get("reconcile") or {}).get("applied_revision") == first, 60,
             "the reconciler applies HEAD")
        pushed = time.time()
        commit({"schedules.d/fast.yaml": "schedules:\n  fast: {job: health-check, every: 2s, "
                                         "overlap: allow}\n"}, "fire every 2s")
        runs = poll(lambda: [r for r in store.runs(limit=50) if r.schedule == "fast"],
                    30, "the new schedule fires")
        assert runs[-1].created - pushed < 10  # commit to first firing, through everything
        done = poll(lambda: [r for r in store.runs(limit=50) if r.schedule == "fast"
                             and r.state == "SUCCESS"], 60, "a fired run succeeds")
        assert done[0].revision == git(demo_repo, "rev-parse", "HEAD")


def test_require_signed_applies_only_signed_heads(demo_repo: Path, tmp_path: Path) -> None:

    state = copy_demo(tmp_path / "runner-home")
    trusted = keygen(tmp_path / "trusted").split()
    keygen(tmp_path / "stranger")
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"t@example.invalid {trusted[0]} {trusted[1]}\n")

    def signed_commit(key: str, message: str) -> str:
        (demo_repo / "files" / "motd.txt").write_text(message + "\n")
        git(demo_repo, "add", "-A")
        git(demo_repo, "-c", "gpg.format=ssh", "-c", f"user.signingkey={tmp_path / key}",
            "commit", "-q", "-S", "-m", message)
        return git(demo_repo, "rev-parse", "HEAD")

    def attempt() -> subprocess.CompletedProcess[str]:
        return runner(state, "reconcile", "--once", "--source", str(demo_repo),
                      "--require-signed", str(allowed))

    unsigned_head = git(demo_repo, "rev-parse", "HEAD")
    refused = attempt()
    assert refused.returncode == 1
    assert f"head commit {unsigned_head[:12]} is not signed by a key of {allowed}" \
        in refused.stderr
    assert "applied_revision" not in reconcile_status(state)
    good = signed_commit("trusted", "signed by a trusted key")
    assert attempt().returncode == 0
    assert reconcile_status(state)["applied_revision"] == good
    bad = signed_commit("stranger", "signed by someone else")
    refused = attempt()
    assert refused.returncode == 1
    s = reconcile_status(state)
    assert (s["applied_revision"], s["attempted_revision"]) == (good, bad)
    assert s["refused"].startswith(f"head commit {bad[:12]} is not signed by a key of")


def test_push_to_a_bare_remote_reassigns_a_running_worker(demo_repo: Path,
                                                          tmp_path: Path) -> None:


    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(demo_repo), str(remote))
    state = copy_demo(tmp_path / "runner-home")
    with runner_up(state, tmp_path / "up.log", "--source", str(remote), "--branch", "main"):
        store = FileStore(state / ".runner" / "state")
        poll(lambda: (store.get("reconcile") or {}).get("applied_revision"), 60, "applied")
        queues = (demo_repo / "queues.yaml").read_text()
        changed = queues.replace("queues: [system, execution]", "queues: [system, extra]")
        changed = changed.replace("\nqueues:\n", "\nqueues:\n  extra: {}\n", 1)
        assert changed.count("extra") == 2
        (demo_repo / "queues.yaml").write_text(changed)
        (demo_repo / "jobs.d" / "extra.yaml").write_text(
            "jobs:\n  on-extra: {queue: extra, targets: [localhost], "
            "steps: [{command: echo extra}]}\n")
        git(demo_repo, "add", "-A")
        git(demo_repo, "commit", "-q", "-m", "system-worker also serves extra")
        git(demo_repo, "push", "-q", str(remote), "main")
        head = git(demo_repo, "rev-parse", "HEAD")
        poll(lambda: (store.get("reconcile") or {}).get("applied_revision") == head, 30,
             "the push is applied")
        done = runner(state, "run", "on-extra", "--enqueue", "--wait", "--format", "json")
        assert done.returncode == 0, done.stdout + done.stderr
        record = json.loads(done.stdout)
        assert record["worker"].startswith("system-worker-")  # the running worker, reassigned
        assert record["revision"] == head
