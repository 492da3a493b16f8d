"""`runner discover ssh` against real sshd on loopback: new hosts proposed on a branch (never
the applied one), a changed key flagged, a closed port reported, the branch valid and its
targets usable; nothing new makes no branch; the scheduled form (a job step)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from runner.celery.tasks import _Process, execute
from runner.cli import cli
from runner.runs import RunRecord, new_run_id
from runner.settings import Settings
from runner.system import System
from tests.helpers.repos import copy_demo, git, runner_on, small_repo
from tests.servers import Sshd, free_port, keygen, start_sshd

WORKTREE = {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}


@dataclass(frozen=True)
class Fleet:
    """Two new hosts (a, b), one whose key differs from the recorded one (c), one known host
    (the session's sshd on 127.0.0.1), a closed port; `repo` records c and the known one."""

    a: Sshd
    b: Sshd
    c: Sshd
    known: Sshd
    closed: int
    repo: Path
    remote: Path

    def args(self, *extra: str) -> list[str]:
        return ["discover", "ssh", f"127.0.0.2:{self.a.port}", f"127.0.0.3:{self.b.port}",
                f"127.0.0.4:{self.c.port}", f"127.0.0.1:{self.known.port}",
                f"127.0.0.5:{self.closed}", *extra]


@pytest.fixture(scope="module")
def fleet(sshd: Sshd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("discover")
    a, b, c = (start_sshd(tmp / n, address=f"127.0.0.{i}") for i, n in
               ((2, "a"), (3, "b"), (4, "c")))
    try:
        # one login key for both new hosts
        with open(b.dir / "authorized_keys", "a") as f:
            f.write((a.client_key.with_suffix(".pub")).read_text())
        repo = copy_demo(tmp / "config")
        other = keygen(tmp / "other").split()[:2]  # what c "had" before
        (repo / "targets.d" / "fleet.yaml").write_text(
            "targets:\n"
            f"  db-old: {{host: 127.0.0.4, port: {c.port}, known_hosts: targets.d/fleet.kh}}\n"
            f"  web-known: {{host: 127.0.0.1, port: {sshd.port}, user: {sshd.user}, "
            f"key_file: {sshd.client_key}, known_hosts: targets.d/fleet.kh}}\n")
        (repo / "targets.d" / "fleet.kh").write_text(
            f"[127.0.0.4]:{c.port} {' '.join(other)}\n{sshd.host_key_line}\n")
        git(repo, "init", "-q", "-b", "main")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "fleet")
        remote = tmp / "remote.git"
        git(tmp, "init", "-q", "--bare", str(remote))
        git(repo, "remote", "add", "origin", str(remote))
        yield Fleet(a, b, c, sshd, free_port(), repo, remote)
    finally:
        for s in (a, b, c):
            s.stop()


def _discover(fleet: Fleet, *args: str) -> subprocess.CompletedProcess[str]:
    done = runner_on(fleet.repo, *args, env=WORKTREE)
    assert "Traceback" not in done.stdout + done.stderr
    return done


def _key(s: Sshd) -> str:
    return s.host_key_line.split(" ", 1)[1]


def test_new_hosts_are_proposed_on_a_branch_and_a_changed_key_is_flagged(
        fleet: Fleet, tmp_path: Path) -> None:
    main = git(fleet.repo, "rev-parse", "main")
    done = _discover(fleet, *fleet.args("--user", fleet.a.user, "--key", str(fleet.a.client_key),
                                        "--push"))
    out = done.stdout
    assert done.returncode == 1, out + done.stderr  # the changed key
    assert "trusting the host key each one presents now" in out
    assert f"CHANGED    db-old 127.0.0.4:{fleet.c.port}" in out
    assert f"known      web-known 127.0.0.1:{fleet.known.port}" in out
    assert f"127.0.0.5:{fleet.closed} (connection refused)" in out
    shown = subprocess.run(["ssh-keygen", "-lf", str(fleet.a.dir / "host_ed25519.pub")],
                           capture_output=True, text=True, check=True).stdout.split()[1]
    assert f"127.0.0.2:{fleet.a.port}: ssh-ed25519 {shown}  SSH-2.0-OpenSSH" in out
    branch = f"discovery/{datetime.now(UTC).date().isoformat()}"
    assert f"branch {branch} (" in out and "Before merging, check:" in out
    # the applied branch and the worktree are untouched; the branch is pushed
    assert git(fleet.repo, "rev-parse", "main") == main
    assert git(fleet.repo, "status", "--porcelain") == ""
    assert git(fleet.remote, "rev-parse", branch) == git(fleet.repo, "rev-parse", branch)
    changed = git(fleet.repo, "diff", "--name-only", "main", branch).split()
    assert changed == ["targets.d/discovered.known_hosts", "targets.d/discovered.yaml"]
    keys = git(fleet.repo, "show", f"{branch}:targets.d/discovered.known_hosts").splitlines()
    assert keys == [fleet.a.host_key_line, fleet.b.host_key_line]  # not c's new key
    found = yaml.safe_load(git(fleet.repo, "show", f"{branch}:targets.d/discovered.yaml"))
    (na, ta), (nb, tb) = found["targets"].items()
    assert nb == f"{na}-2"  # both hosts have the same hostname: unique names
    assert (ta["host"], ta["port"], tb["host"], tb["port"]) == (
        "127.0.0.2", fleet.a.port, "127.0.0.3", fleet.b.port)
    assert ta["known_hosts"] == "targets.d/discovered.known_hosts"
    assert ta["labels"]["discovered"] == branch.removeprefix("discovery/")
    assert ta["labels"]["os"] and "OpenSSH" in ta["description"]

    # the branch validates, and its targets run with the keys it records
    check = tmp_path / "check"
    git(fleet.repo, "worktree", "add", "-q", str(check), branch)
    assert runner_on(check, "validate", env=WORKTREE).returncode == 0
    found["targets"][na]["key_file"] = str(fleet.a.client_key)  # the workers' login key
    (check / "targets.d" / "discovered.yaml").write_text(yaml.safe_dump(found))
    probe = {"queue": "execution", "targets": [na, "db-old"], "steps": [{"command": "echo hi"}]}
    (check / "jobs.d" / "probe.yaml").write_text(json.dumps({"jobs": {"probe": probe}}))
    ran = runner_on(check, "run", "probe", "--format", "json", env=WORKTREE)
    result = json.loads(ran.stdout)["targets"]
    assert result[na]["status"] == "success", result
    assert "CHANGED" in result["db-old"]["error"]
    assert "known_hosts targets.d/fleet.kh" in result["db-old"]["error"]

    # again, before the branch is merged: proposed already, no second branch
    branches = git(fleet.repo, "branch", "--list", "discovery/*")
    again = _discover(fleet, *fleet.args())
    assert f"proposed on branch {branch} already: no branch made" in again.stdout
    assert git(fleet.repo, "branch", "--list", "discovery/*") == branches

    # merged: nothing new (c left out, so nothing flagged either): exit 0, no branch
    git(fleet.repo, "merge", "-q", "--ff-only", branch)
    args = [x for x in fleet.args() if not x.startswith("127.0.0.4:")]
    last = _discover(fleet, *args)
    assert last.returncode == 0, last.stdout + last.stderr
    assert f"known      {na} 127.0.0.2:{fleet.a.port}" in last.stdout
    assert "nothing new: no branch made" in last.stdout
    assert git(fleet.repo, "branch", "--list", "discovery/*") == branches


def test_a_proposal_that_would_not_validate_makes_no_branch(fleet: Fleet,
                                                           tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(fleet.repo), str(clone))
    (clone / "targets.d" / "discovered.yaml").write_text("targets: {x: {transport: local}}\n")
    git(clone, "add", "-A")
    git(clone, "commit", "-q", "-m", "hand-edited into flow style")
    done = runner_on(clone, "discover", "ssh", f"127.0.0.2:{fleet.a.port}", env=WORKTREE)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "targets.d/discovered.yaml:" in done.stdout
    assert "the configuration at the proposed commit is not valid; no branch made" in done.stderr
    assert git(clone, "branch", "--list", "discovery/*") == ""


def test_a_host_refusing_sessions_after_login_is_reported_and_the_scan_goes_on(
        fleet: Fleet, tmp_path: Path) -> None:
    refusing = start_sshd(tmp_path / "refusing", address="127.0.0.6",
                          extra="Match all\n  MaxSessions 0\n")  # login ok, no session
    try:
        with open(refusing.dir / "authorized_keys", "a") as f:
            f.write((fleet.a.client_key.with_suffix(".pub")).read_text())
        repo = copy_demo(tmp_path / "config")  # not fleet.repo: a may be known there
        git(repo, "init", "-q", "-b", "main")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "no fleet")
        done = runner_on(repo, "discover", "ssh", f"127.0.0.6:{refusing.port}",
                         f"127.0.0.2:{fleet.a.port}", "--user", fleet.a.user, "--key",
                         str(fleet.a.client_key), env=WORKTREE)
    finally:
        refusing.stop()
    out = done.stdout
    assert done.returncode == 0 and "Traceback" not in out + done.stderr, out + done.stderr
    assert (f"127.0.0.6:{refusing.port}: ssh-ed25519 " in out
            and "(logged in, but the facts were not read: open failed)" in out)
    [healthy] = [x for x in out.splitlines() if f" 127.0.0.2:{fleet.a.port}: " in x]
    assert healthy.startswith("new ") and " kernel=" in healthy, out  # its facts were read


def test_a_job_step_runs_discovery_and_fails_on_a_changed_key(fleet: Fleet,
                                                              tmp_path: Path) -> None:
    ops = copy_demo(tmp_path / "ops")
    (ops / "jobs.d" / "discover.yaml").write_text(
        "jobs:\n  discover-fleet:\n    queue: system\n    targets: [localhost]\n    steps:\n"
        f"      - command: {sys.executable} -m runner discover ssh 127.0.0.4:{fleet.c.port} "
        f"--branch discovery/job --repo {fleet.repo}\n")
    ran = runner_on(ops, "run", "discover-fleet", "--format", "json",
                    env={**WORKTREE, "RUNNER_LOCAL_ENV": "PYTHONPATH"})
    target = json.loads(ran.stdout)["targets"]["localhost"]
    assert ran.returncode == 1 and target["status"] == "failed"
    assert "CHANGED    db-old" in target["stdout"]
    assert "nothing new: no branch made" in target["stdout"]
    assert "discovery/job" not in git(fleet.repo, "branch", "--list")


@pytest.mark.parametrize(("args", "says"), [
    (["10.0.0.0/8"], "network 10.0.0.0/8 holds 16777216 addresses, more than the 65536"),
    (["127.0.0.1:99999"], "the port '99999' is not a number from 1 to 65535"),
    (["10.0.0.0/33"], "'10.0.0.0/33' is not a network"),
    (["127.0.0.1:1"], "is not a git repository with a commit"),
])
def test_a_scan_too_big_or_malformed_or_outside_git_is_refused_in_one_sentence(
        tmp_path: Path, args: list[str], says: str) -> None:
    plain = copy_demo(tmp_path / "plain")
    done = CliRunner().invoke(cli, ["discover", "ssh", *args, "--repo", str(plain)])
    assert done.exit_code == 2 and says in done.stderr, done.output
    assert len(done.stderr.strip().splitlines()) == 1 and not done.stdout


def test_a_worker_checks_a_target_against_its_repository_known_hosts(
        sshd: Sshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's path: the file comes from what apply published, at the run's revision."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("RUNNER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)  # no keys/ here: only the repository has the file
    repo = small_repo(tmp_path / "repo", "jobs:\n  j: {queue: q, targets: [box], steps: "
                                         "[{command: echo via-worker}]}\n")
    (repo / "keys").mkdir()
    (repo / "keys" / "kh").write_text(sshd.host_key_line + "\n")
    box = {**sshd.target(), "known_hosts": "keys/kh"}
    (repo / "targets.d" / "box.yaml").write_text(json.dumps({"targets": {"box": box}}))
    system = System(Settings(), repo, repo / ".runner")
    run_id = new_run_id()
    system.store.save_run(RunRecord.from_json({"run_id": run_id, "job": "j", "state": "PENDING",
                                               "created": time.time(), "queue": "q"}))
    state, error = execute(system, _Process(), "j", system.config().revision, run_id, None,
                           "w-1@here", False)
    record = system.store.run(run_id) or RunRecord(run_id)
    assert (state, error) == ("SUCCESS", None), record.result
    assert "via-worker" in record.result["targets"]["box"]["stdout"]
