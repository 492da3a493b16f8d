"""The command line as users run it: a real `runner` process, exit codes, formats, no traceback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.repos import PROJECT, copy_demo, runner, up_fails
from tests.servers import free_port

NOW = "2026-10-24T12:00:00+02:00"  # the night after, Berlin leaves daylight-saving time


def test_demo_validates(tmp_path: Path) -> None:
    done = runner("validate", cache=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok: 2 queues, 2 workers, 2 targets, 4 jobs, 3 schedules, "
                                  "1 workflow")
    done = runner("validate", "--format", "json", cache=tmp_path)
    assert json.loads(done.stdout) == {"ok": True, "errors": []}


def test_plan_json_has_the_contract_shape(tmp_path: Path) -> None:
    done = runner("plan", "--format", "json", "--now", NOW, "--count", "2", cache=tmp_path)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert {"revision", "queues", "workers", "routes", "schedules"} <= set(plan)
    assert plan["routes"] == {"health-check": "system", "record-outcome": "system",
                              "restart-service": "execution", "tmp-cleanup": "execution"}
    assert plan["queues"]["execution"]["priority"] == 9
    assert plan["workers"]["system-worker"]["queues"] == ["system", "execution"]
    nightly = plan["schedules"]["nightly-cleanup"]
    assert nightly["job"] == "tmp-cleanup" and nightly["queue"] == "execution"
    assert nightly["timezone"] == "Europe/Berlin"
    # fixed-hour cron on the fall-back night fires once, at the first 02:30
    assert nightly["next"] == ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
    assert plan["schedules"]["health-every-minute"]["next"] == ["2026-10-24T10:01:00+00:00",
                                                                "2026-10-24T10:02:00+00:00"]


def test_plan_text_and_bad_now() -> None:
    done = runner("plan", "--now", NOW, "--count", "1")
    assert done.returncode == 0
    assert "nightly-cleanup: job tmp-cleanup on execution, cron 30 2 * * * (Europe/Berlin)" \
        in done.stdout
    done = runner("plan", "--now", "tomorrow")
    assert done.returncode == 2 and "--now 'tomorrow' is not an ISO 8601 time" in done.stderr
    done = runner("plan", "--now", "2026-01-01T00:00:00")
    assert done.returncode == 2 and "has no UTC offset" in done.stderr


def test_dry_run_shows_targets_and_steps_and_runs_nothing(tmp_path: Path) -> None:
    done = runner("run", "health-check", "--dry-run", "--format", "json", cache=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["job"] == "health-check" and result["status"] == "dry-run"
    assert list(result["targets"]) == ["localhost", "localhost-batch"]
    assert [s["kind"] for s in result["steps"]] == ["command", "script", "upload", "download",
                                                    "command"]
    done = runner("run", "health-check", "--dry-run", "--limit", "label:role=batch")
    assert "localhost-batch" in done.stdout and "  localhost " not in done.stdout
    done = runner("run", "health-check", "--dry-run", "--limit", "nothing-here")
    assert done.returncode == 2 and "matches none of job 'health-check'" in done.stderr
    done = runner("run", "health-chek", "--dry-run")
    assert done.returncode == 2 and "did you mean 'health-check'" in done.stderr


def test_secrets_are_masked_in_dry_run(tmp_path: Path) -> None:
    repo = _copy_demo(tmp_path)
    (repo / "targets.d/ssh.yaml").write_text(
        "targets:\n  box: {host: 127.0.0.1, user: ops, "
        "password: env:RUNNER_SECRET_BOX_PASSWORD}\n")
    jobs = (repo / "jobs.d/health.yaml").read_text().replace(
        "env: {LEVEL: info}", "env: {LEVEL: info, TOKEN: env:RUNNER_SECRET_API_TOKEN}").replace(
        'targets: ["label:role=web", group:demo]', 'targets: ["label:role=web", group:demo, box]')
    (repo / "jobs.d/health.yaml").write_text(jobs)
    done = subprocess.run([sys.executable, "-m", "runner", "run", "health-check", "--dry-run",
                           "--repo", str(repo)], capture_output=True, text=True,
                          env={**os.environ, "RUNNER_SECRET_BOX_PASSWORD": "s3cr3t-pw",
                               "RUNNER_SECRET_API_TOKEN": "t0k3n",
                               "RUNNER_CACHE_DIR": str(tmp_path / "c")})
    assert done.returncode == 0, done.stderr
    assert "TOKEN=<secret env:RUNNER_SECRET_API_TOKEN: resolves>" in done.stdout
    assert "s3cr3t-pw" not in done.stdout and "t0k3n" not in done.stdout


def test_errors_in_every_format(tmp_path: Path) -> None:
    repo = _copy_demo(tmp_path)
    (repo / "jobs.d/bad.yaml").write_text("jobs:\n  bad:\n    queue: sytem\n"
                                          "    targets: [localhost]\n    steps: [{command: x}]\n")
    want = ("jobs.d/bad.yaml", 3, 12, "job 'bad' uses queue 'sytem'")
    done = runner("validate", "--repo", str(repo), cache=tmp_path / "c")
    assert done.returncode == 1
    assert done.stdout.startswith("jobs.d/bad.yaml:3:12: error: job 'bad' uses queue 'sytem', "
                                  "which is not declared in queues.yaml; did you mean 'system'?")
    done = runner("validate", "--repo", str(repo), "--format", "json", cache=tmp_path / "c")
    assert done.returncode == 1
    error = json.loads(done.stdout)["errors"][0]
    assert (error["file"], error["line"], error["column"]) == want[:3]
    assert want[3] in error["message"]
    done = runner("validate", "--repo", str(repo), "--format", "github", cache=tmp_path / "c")
    assert done.returncode == 1
    assert done.stdout.startswith("::error file=jobs.d/bad.yaml,line=3,col=12::job 'bad'")


def test_github_format_escapes_as_the_actions_toolkit(tmp_path: Path) -> None:
    """A file name or a message cannot start a second workflow command: data escapes %, CR,
    LF; properties also ':' and ',' (@actions/core's escapeData and escapeProperty)."""
    repo = _copy_demo(tmp_path)
    name = "x\n::warning file=a,line=1::pwned.yaml"
    (repo / "jobs.d" / name).write_text(
        'jobs:\n  odd:\n    queue: system\n    targets: ["50%,x"]\n'
        "    steps: [{command: x}]\n")
    (repo / "jobs.d" / "y\r\n::warning::z.yaml").symlink_to("/etc/passwd")  # a message
    done = runner("validate", "--repo", str(repo), "--format", "github", cache=tmp_path / "c")
    assert done.returncode == 1
    errors = json.loads(runner("validate", "--repo", str(repo), "--format", "json",
                               cache=tmp_path / "c").stdout)["errors"]
    lines = done.stdout.splitlines()
    assert len(lines) == len(errors) == 2 and all(x.startswith("::error ") for x in lines)

    def unescape(text: str) -> str:  # what the runner of the workflow reads back
        for code, char in (("%2C", ","), ("%3A", ":"), ("%0A", "\n"), ("%0D", "\r"),
                           ("%25", "%")):
            text = text.replace(code, char)
        return text

    for line, error in zip(lines, errors, strict=True):
        props, message = line.removeprefix("::error ").split("::", 1)
        fields = dict(p.split("=", 1) for p in props.split(","))
        assert set(fields) == {"file", "line", "col"}
        assert unescape(fields["file"]) == error["file"]
        assert (int(fields["line"]), int(fields["col"])) == (error["line"], error["column"])
        assert unescape(message) == error["message"]
    assert lines[0].startswith("::error file=jobs.d/x%0A%3A%3Awarning file=a%2Cline=1%3A%3A"
                               "pwned.yaml,line=4,col=15::target selector '50%25,x' of job")
    assert lines[1].startswith("::error file=jobs.d/y%0D%0A%3A%3Awarning%3A%3Az.yaml,line=1,"
                               "col=1::jobs.d/y%0D%0A::warning::z.yaml is a symlink leading out")


@pytest.mark.parametrize(("args", "words"), [
    (("validate", "--repo", "/nonexistent"), "no such directory"),
    (("validate", "--repo", "/"), "no runner configuration here"),
    (("validate", "--format", "xml"), "'xml' is not one of"),
    (("plan", "--count", "0"), "0 is not in the range"),
    (("run", "nope"), "there is no job 'nope'"),
    (("run", "health-check", "--limit", "group:nobody"), "matches none of job"),
    (("bogus",), "No such command 'bogus'"),
])
def test_usage_and_environment_errors_exit_2(args: tuple[str, ...], words: str) -> None:
    done = runner(*args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert words in done.stderr


def test_cache_follows_the_change(tmp_path: Path) -> None:
    repo, cache = _copy_demo(tmp_path), tmp_path / "cache"
    assert runner("validate", "--repo", str(repo), cache=cache).returncode == 0
    assert list(cache.iterdir()), "the first run writes the cache"
    jobs = repo / "jobs.d/health.yaml"
    jobs.write_text(jobs.read_text().replace("queue: system", "queue: nowhere"))
    done = runner("validate", "--repo", str(repo), cache=cache)
    assert done.returncode == 1 and "queue 'nowhere'" in done.stdout
    jobs.write_text(jobs.read_text().replace("queue: nowhere", "queue: system"))
    assert runner("validate", "--repo", str(repo), cache=cache).returncode == 0


def test_schema_command_writes_the_schemas(tmp_path: Path) -> None:
    done = runner("schema", str(tmp_path / "out"))
    assert done.returncode == 0
    for kind in ("queues", "targets", "jobs", "schedules"):
        schema = json.loads((tmp_path / "out" / f"{kind}.schema.json").read_text())
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"].endswith(f"/{kind}.schema.json")


def test_pre_commit_hook_definition_runs_validate() -> None:
    hooks = (PROJECT / ".pre-commit-hooks.yaml").read_text()
    assert "entry: runner validate" in hooks


def _copy_demo(tmp_path: Path) -> Path:
    return copy_demo(tmp_path / "repo")


def test_up_refuses_a_bad_api_bind_before_starting_anything(tmp_path: Path) -> None:
    done = runner("up", "--api-bind", "nowhere", cache=tmp_path)
    assert done.returncode == 2
    assert done.stderr == "error: --api-bind 'nowhere' is not HOST:PORT, e.g. 127.0.0.1:8080\n"


def test_up_on_a_busy_api_address_exits_2_before_starting_anything(
        demo_repo: Path, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, err, took = up_fails(demo_repo, "--api-bind", f"127.0.0.1:{port}",
                                   env={"RUNNER_CACHE_DIR": str(tmp_path / "cache")})
    assert (code, err) == (2, f"error: cannot listen on 127.0.0.1:{port}: address already in "
                              "use; pass --api-bind HOST:PORT (a free port, or an address of "
                              "this machine)\n")
    assert took < 20


@pytest.mark.parametrize(("env", "says"), [
    ({"RUNNER_OUTPUT_CAP": "abc"}, "error: RUNNER_OUTPUT_CAP='abc' is not a number"),
    ({"RUNNER_API_TOKENS": "viewer=env:TEST_UNSET_TOKEN"},
     "error: RUNNER_API_TOKENS: secret env:TEST_UNSET_TOKEN is not set"),
])
def test_up_with_a_bad_setting_exits_2_with_one_sentence(
        demo_repo: Path, tmp_path: Path, env: dict[str, str], says: str) -> None:
    code, err, _ = up_fails(demo_repo, "--api-bind", f"127.0.0.1:{free_port()}",
                            env={**env, "RUNNER_CACHE_DIR": str(tmp_path / "cache")})
    assert code == 2 and err.startswith(says) and err.count("\n") == 1, err


def test_api_on_a_busy_address_exits_2_naming_it(tmp_path: Path) -> None:
    repo = _copy_demo(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = runner("api", "--repo", str(repo), "--bind", f"127.0.0.1:{port}", cache=tmp_path)
    assert (done.returncode, done.stderr) == (
        2, f"error: cannot listen on 127.0.0.1:{port}: address already in use; pass --bind "
           "HOST:PORT (a free port, or an address of this machine)\n")
