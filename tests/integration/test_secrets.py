"""Secrets for real: what a local job's environment holds, which references resolve, and that
no secret (nor part of one) reaches output, downloads, the store, the API or the report branch."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from runner.executor.base import MASK
from runner.runs import RunRecord
from tests.helpers.procs import poll
from tests.helpers.repos import copy_demo
from tests.servers import free_port, runner_up, wait_port


def runner(repo: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runner", *args, "--repo", str(repo)],
                          capture_output=True, text=True, timeout=120, env=env)


def clean_env(tmp_path: Path, **more: str) -> dict[str, str]:
    """This process's environment for a runner command, with no Redis (the embedded store)."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    return {**env, "RUNNER_CACHE_DIR": str(tmp_path / "cache"), **more}


def job(repo: Path, text: str) -> None:
    (repo / "jobs.d" / "extra.yaml").write_text(text)


def run_json(repo: Path, name: str, env: dict[str, str]) -> dict[str, Any]:
    done = runner(repo, "run", name, "--format", "json", env=env)
    assert done.returncode in (0, 1), done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def between(text: str, start: str, end: str) -> str:
    return text.partition(start)[2].partition(end)[0]


def test_a_job_under_runner_up_never_shows_what_runner_holds(
        demo_repo: Path, commit: Callable[..., str], tmp_path: Path) -> None:
    """A local job prints its environment, the worker's environment (/proc/$PPID/environ)
    and a token file: the API tokens, the JWT key and the Redis password are in none of its
    output, the store, the API's answer, the report branch or the log."""
    ops, view, jwt_key, password = (secrets.token_hex(16) for _ in range(4))
    (tmp_path / "view-token").write_text(view + "\n")
    commit({"schedules.d/ops.yaml": None, "jobs.d/show.yaml": f"""\
jobs:
  show-env:
    queue: system
    targets: [localhost]
    steps:
      - {{command: echo ==env==}}
      - {{command: env}}
      - {{command: echo ==worker==}}
      - {{command: "tr '\\\\0' '\\\\n' < /proc/$PPID/environ; cat {tmp_path}/view-token"}}
"""}, "a job that shows what it can see")
    port = free_port()
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    (tmp_path / "redis").mkdir()
    server = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--rdbcompression", "no", "--requirepass",
                               password, "--dir", str(tmp_path / "redis")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, server)
        url = f"redis://:{password}@127.0.0.1:{port}/0"
        env = clean_env(tmp_path, REDIS_URL=url, TEST_OPS_TOKEN=ops, TEST_JWT_KEY=jwt_key,
                        RUNNER_API_TOKENS=f"operator:otto=env:TEST_OPS_TOKEN,viewer:vera=file:"
                                          f"{tmp_path}/view-token",
                        RUNNER_API_JWT_KEY="env:TEST_JWT_KEY")
        log = tmp_path / "up.log"
        with runner_up(demo_repo, log, env=env):
            done = runner(demo_repo, "run", "show-env", "--enqueue", "--wait", "--format",
                          "json", env=env)
            assert done.returncode == 0, done.stdout + done.stderr
            run = json.loads(done.stdout)
            api = poll(lambda: re.search(r"api: dashboard and API on (http://\S+/)",
                                         log.read_text()), 60, "the API listens")[1]
            asked = urllib.request.Request(f"{api}api/runs/{run['run_id']}",
                                           headers={"Authorization": f"Bearer {ops}"})
            with urllib.request.urlopen(asked, timeout=10) as r:
                answer = r.read()
        redis.Redis.from_url(url).save()
        stored = (tmp_path / "redis" / "dump.rdb").read_bytes()
        published = runner(demo_repo, "publish", "--once", env=env)
        assert published.returncode == 0, published.stderr
    finally:
        server.terminate()
        server.wait(10)
    out = run["targets"]["localhost"]["stdout"]
    jobs_env = between(out, "==env==\n", "==worker==")
    assert "PATH=" in jobs_env and "HOME=" in jobs_env
    for name in ("REDIS_URL", "RUNNER_API_TOKENS", "TEST_OPS_TOKEN", "TEST_JWT_KEY",
                 "RUNNER_CACHE_DIR"):
        assert f"{name}=" not in jobs_env, jobs_env
    worker = out.partition("==worker==\n")[2]
    assert f"TEST_OPS_TOKEN={MASK}" in worker and f"TEST_JWT_KEY={MASK}" in worker
    assert f"redis://:{MASK}@127.0.0.1" in worker and worker.endswith(f"{MASK}\n")
    objects = subprocess.run(["git", "-C", str(demo_repo), "cat-file", "--batch-all-objects",
                              "--batch"], capture_output=True, check=True).stdout
    assert MASK.encode() in objects and MASK.encode() in stored and b"==worker==" in answer
    for secret in (ops, view, jwt_key, password):
        for seen in (done.stdout.encode(), answer, stored, objects, log.read_bytes()):
            assert secret.encode() not in seen


def test_runner_local_env_passes_more_but_never_runners_own(tmp_path: Path) -> None:
    repo = copy_demo(tmp_path / "config")
    job(repo, "jobs:\n  show: {queue: system, targets: [localhost], steps: [{command: env}]}\n")
    env = clean_env(tmp_path, MY_SETTING="abc", EXTRA_ONE="1", NOT_PASSED="zzz",
                    RUNNER_SECRET_KEY="k3y-value", RUNNER_LOCAL_ENV="MY_SETTING,EXTRA_*,RUNNER_*")
    out = run_json(repo, "show", env)["targets"]["localhost"]["stdout"]
    assert "MY_SETTING=abc\n" in out and "EXTRA_ONE=1\n" in out
    assert f"PATH={os.environ['PATH']}\n" in out
    for name in ("NOT_PASSED", "RUNNER_SECRET_KEY", "RUNNER_CACHE_DIR", "RUNNER_LOCAL_ENV"):
        assert f"{name}=" not in out


OUTSIDE = ("is outside RUNNER_SECRET_DIRS ({tmp}/secrets)", " once symlinks are resolved; put "
           "the file there or widen RUNNER_SECRET_DIRS")


@pytest.mark.parametrize(("ref", "why", "fix"), [
    ("env:HOME", "is outside RUNNER_SECRET_ENV (RUNNER_SECRET_*)",
     "; name a variable that matches it or widen RUNNER_SECRET_ENV"),
    ("file:/etc/passwd", *OUTSIDE),
    ("file:{tmp}/secrets/link", *OUTSIDE),  # a symlink out of the directory
    ("file:{tmp}/secrets/../elsewhere", *OUTSIDE),
    ("env:RUNNER_SECRET_SHORT", "is shorter than 4 bytes",
     ", too short to be masked in output without showing it; use a longer secret"),
    ("env:RUNNER_SECRET_UNSET", "is not set", " in the worker's environment"),
    ("file:{tmp}/secrets/missing", "is unreadable (FileNotFoundError)", ""),
])
def test_a_reference_out_of_scope_fails_the_target_and_dry_run_says_so(
        tmp_path: Path, ref: str, why: str, fix: str) -> None:
    repo = copy_demo(tmp_path / "config")
    (tmp_path / "secrets").mkdir()
    (tmp_path / "elsewhere").write_text("a-file-outside\n")
    (tmp_path / "secrets" / "link").symlink_to(tmp_path / "elsewhere")
    ref, why, fix = (s.format(tmp=tmp_path) for s in (ref, why, fix))
    job(repo, f"jobs:\n  uses: {{queue: system, targets: [localhost], env: {{TOKEN: '{ref}'}}, "
              "steps: [{command: 'echo \"[$TOKEN]\"'}]}\n")
    env = clean_env(tmp_path, RUNNER_SECRET_DIRS=str(tmp_path / "secrets"),
                    RUNNER_SECRET_SHORT="Q")  # one character
    target = run_json(repo, "uses", env)["targets"]["localhost"]
    assert target["status"] == "failed"
    assert target["error"] == f"localhost: not run, job uses env TOKEN: secret {ref} {why}{fix}"
    dry = runner(repo, "run", "uses", "--dry-run", "--format", "json", env=env)
    assert json.loads(dry.stdout)["env"]["TOKEN"] == f"<secret {ref}: {why[3:]}>"
    for value in ("a-file-outside", "root:", os.environ.get("HOME", "/root")):
        assert value not in target["error"] + dry.stdout


def test_a_file_secret_that_is_not_utf8_resolves_and_is_masked_in_bytes(
        tmp_path: Path) -> None:
    repo = copy_demo(tmp_path / "config")
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "raw").write_bytes(b"\xff\xfe-binary-key\n")
    drop = tmp_path / "drop"
    drop.mkdir()
    job(repo, f"""\
jobs:
  raw:
    queue: system
    targets: [localhost]
    env: {{RAW: 'file:{tmp_path}/secrets/raw'}}
    steps:
      - {{command: 'printf "%s|" "$RAW" > {drop}/raw; printf "[%s]" "$RAW"'}}
      - {{download: {{src: {drop}/raw}}}}
""")
    env = clean_env(tmp_path, RUNNER_SECRET_DIRS=str(tmp_path / "secrets"))
    dry = runner(repo, "run", "raw", "--dry-run", "--format", "json", env=env)
    assert json.loads(dry.stdout)["env"] == {
        "RAW": f"<secret file:{tmp_path}/secrets/raw: resolves>"}
    target = run_json(repo, "raw", env)["targets"]["localhost"]
    assert (target["status"], target["error"]) == ("success", None)
    assert target["stdout"] == f"[{MASK}]"
    assert Path(target["downloads"][0]["saved"]).read_bytes() == MASK.encode() + b"|"


def test_output_and_downloads_are_masked_before_they_are_cut(tmp_path: Path) -> None:
    """Overlapping secrets printed where the output's cap cuts them, and a secret where a
    download's max_bytes cuts it: not one character of them is kept."""
    repo = copy_demo(tmp_path / "config")
    drop = tmp_path / "drop"
    drop.mkdir()
    job(repo, f"""\
jobs:
  masked:
    queue: system
    targets: [localhost]
    env: {{A: 'env:RUNNER_SECRET_A', B: 'env:RUNNER_SECRET_B'}}
    steps:
      - {{command: 'printf "xxxxxxxxxx%s" "$A" > {drop}/cut;
                    printf "0123456789%s%s----" "$A" "${{B#abcd}}"'}}
      - {{download: {{src: {drop}/cut, max_bytes: 14}}}}
""")
    env = clean_env(tmp_path, RUNNER_SECRET_A="hunter22-abcd", RUNNER_SECRET_B="abcd-ef56",
                    RUNNER_OUTPUT_CAP="14")
    target = run_json(repo, "masked", env)["targets"]["localhost"]
    assert (target["status"], target["error"]) == ("success", None)
    # the secrets overlap (hunter22-abcd-ef56); the cap cuts the output inside them
    assert target["stdout"] == "[... 8 bytes cut ...]\n89********----"
    assert Path(target["downloads"][0]["saved"]).read_bytes() == b"xxxxxxxxxx****"
    assert target["downloads"][0]["truncated"]


def test_a_worker_masks_the_api_token_runner_api_generated(
        demo_repo: Path, commit: Callable[..., str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With no RUNNER_API_TOKENS, `runner api` keeps an operator token in .runner/api-token:
    a job of the same user can read the file, but its output shows it masked."""
    from runner.celery.tasks import _Process, execute
    from runner.runs import new_run_id
    from runner.settings import Settings
    from runner.system import System

    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("RUNNER_CACHE_DIR", str(tmp_path / "cache"))
    state = demo_repo / ".runner"
    state.mkdir()
    token = secrets.token_urlsafe(32)
    (state / "api-token").write_text(token + "\n")
    revision = commit({"jobs.d/peek.yaml": "jobs:\n  peek: {queue: system, targets: [localhost],"
                                           f" steps: [{{command: 'cat {state}/api-token'}}]}}\n"})
    system = System(Settings(), demo_repo, state)
    run_id = new_run_id()
    system.store.save_run(RunRecord.from_json({"run_id": run_id, "job": "peek", "state": "PENDING",
                           "created": 1.0, "trigger": "cli", "queue": "system"}))
    assert execute(system, _Process(), "peek", revision, run_id, None, "w", False)[0] == "SUCCESS"
    record = system.store.run(run_id)
    assert record is not None
    assert record.result["targets"]["localhost"]["stdout"] == f"{MASK}\n"
    # and a direct `runner run` masks it too
    direct = subprocess.run([sys.executable, "-m", "runner", "run", "peek", "--repo",
                             str(demo_repo), "--format", "json"], capture_output=True, text=True,
                            timeout=120, check=False)
    assert direct.returncode == 0, direct.stderr
    assert json.loads(direct.stdout)["targets"]["localhost"]["stdout"] == f"{MASK}\n"
    assert token not in direct.stdout + direct.stderr
