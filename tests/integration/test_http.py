"""The http step and transport http targets, against a real loopback HTTPS server whose
certificate a throw-away CA signed: the engine in this process for the cases, and one real
worker on the embedded broker and on Redis."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from runner.cli import cli
from runner.config.model import job, target
from runner.executor.base import MASK, FileBlob, RunResult
from runner.executor.engine import Engine
from runner.settings import Settings
from tests.helpers.cluster import Cluster
from tests.helpers.https import HttpsServer, start_https
from tests.helpers.repos import BASE, PROJECT

TOKEN = "tok-5f3c9a1e-very-secret"
README = (PROJECT / "README.md").read_text()


@pytest.fixture(scope="module")
def https(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsServer]:
    server = start_https(tmp_path_factory.mktemp("https"))
    yield server
    server.stop()


def run(server: HttpsServer, steps: list[dict[str, Any]],
        targets: dict[str, dict[str, Any]] | None = None,
        settings: Settings | None = None) -> RunResult:
    """The job of `steps` run by the engine on an http target `api` at the server (or on
    `targets`), with the CA as the repository file ca.pem."""
    targets = targets or {"api": {"transport": "http", "base_url": server.base}}
    j = job("probe", {"queue": "q", "targets": list(targets), "steps": steps})
    engine = Engine(settings or Settings(), environ={"RUNNER_SECRET_TOKEN": TOKEN,
                                                     "RUNNER_SECRET_CRLF": "x\r\nX-Evil: 1"})
    files = {"ca.pem": FileBlob(server.ca.read_bytes())}

    async def main() -> RunResult:
        try:
            return await engine.run(j, {n: target(n, t) for n, t in targets.items()}, files,
                                    run_id="r1", revision="rev")
        finally:
            await engine.close()

    return asyncio.run(main())


def test_verified_with_ca_file_on_http_and_local_targets(https: HttpsServer) -> None:
    relative = run(https, [{"http": {"url": "/health", "ca_file": "ca.pem"}}])
    assert relative.status == "success", relative.as_dict()
    assert relative.targets["api"].stdout.startswith(f"GET {https.base}/health: 200 OK\n")
    assert "\nContent-Length: 3\n\nok\n" in relative.targets["api"].stdout
    result = run(https, [
        {"http": {"url": f"https://$TARGET_HOST:{https.port}/to-health", "ca_file": "ca.pem",
                  "expect": [200, 204]}}],
        {"api": {"transport": "http", "base_url": https.base}, "here": {"transport": "local"}})
    assert result.status == "success", result.as_dict()
    api, here = result.targets["api"].stdout, result.targets["here"].stdout
    assert api.startswith(f"GET {https.base}/health: 200 OK (after 1 redirect)\n")
    # $TARGET_HOST of a local target is localhost (the certificate names it too)
    assert f"GET https://localhost:{https.port}/health: 200 OK (after 1 redirect)" in here


def test_a_certificate_no_trusted_ca_signed_fails(https: HttpsServer) -> None:
    result = run(https, [{"http": {"url": "/health"}}])  # system CAs: not the test CA
    api = result.targets["api"]
    assert api.status == "failed"
    assert api.error == (f"api: step 'http 1': GET {https.base}/health failed: the TLS "
                         "certificate of 127.0.0.1 is not trusted (unable to get local issuer "
                         "certificate); give the CA that signed it as ca_file")


def test_an_unexpected_status_fails_the_step(https: HttpsServer) -> None:
    result = run(https, [{"name": "up", "http": {"url": "/status/503", "ca_file": "ca.pem",
                                                 "expect": [200, 204]}}])
    api = result.targets["api"]
    assert (api.status, api.error) == ("failed", f"api: step 'up': GET {https.base}/status/503 "
                                                 "returned 503, expected 200 or 204")
    assert api.stdout.startswith(f"GET {https.base}/status/503: 503 Service Unavailable\n")
    default = run(https, [{"http": {"url": "/status/204", "ca_file": "ca.pem"}}])
    assert default.status == "success"  # no expect: any 2xx


def test_a_long_body_is_cut_and_the_status_line_stays(https: HttpsServer) -> None:
    result = run(https, [{"http": {"url": "/big", "ca_file": "ca.pem"}}],
                 settings=Settings(output_cap=1024))
    out = result.targets["api"].stdout
    assert result.status == "success" and len(out) <= 1024
    assert out.startswith(f"GET {https.base}/big: 200 OK\n")
    assert "\n\nxxxx" in out and "[... body cut at " in out and out.endswith(" bytes ...]\n")


def test_a_redirect_loop_is_bounded(https: HttpsServer) -> None:
    before = len(https.seen)
    result = run(https, [{"http": {"url": "/loop", "ca_file": "ca.pem", "max_redirects": 3}}])
    api = result.targets["api"]
    assert api.error == (f"api: step 'http 1': GET {https.base}/loop was redirected more than "
                         "3 times (the last to /loop); fix the redirect loop or raise "
                         "max_redirects")
    assert [p for p, _ in https.seen[before:]] == ["/loop"] * 4


def test_a_header_from_a_secret_is_sent_and_masked(https: HttpsServer) -> None:
    before = len(https.seen)
    result = run(https, [{"http": {"url": "/echo", "method": "POST", "ca_file": "ca.pem",
                                   "headers": {"Authorization": "env:RUNNER_SECRET_TOKEN",
                                               "X-Target": "$TARGET_NAME"},
                                   "body": "from ${TARGET_NAME}"}}])
    api = result.targets["api"]
    assert api.status == "success", api.error
    _, headers = https.seen[before]
    assert (headers["Authorization"], headers["X-Target"]) == (TOKEN, "api")
    assert f"Authorization: {MASK}\n" in api.stdout and TOKEN not in api.stdout
    assert api.stdout.endswith("X-Target: api\nfrom api\n")
    unset = run(https, [{"http": {"url": "/echo", "headers": {"X-Key": "env:RUNNER_SECRET_NO"}}}])
    assert unset.targets["api"].error == ("api: step 'http 1' header X-Key: secret "
                                          "env:RUNNER_SECRET_NO is not set in the worker's "
                                          "environment")
    crlf = run(https, [{"http": {"url": "/echo", "headers": {"X-Key": "env:RUNNER_SECRET_CRLF"}}}])
    assert crlf.targets["api"].error == (f"api: step 'http 1': GET {https.base}/echo failed: a "
                                         "header value holds a line break or a character "
                                         "outside latin-1")


def test_a_worker_runs_an_http_step(cluster: Cluster, https: HttpsServer) -> None:
    shutil.copy(https.ca, cluster.repo / "ca.pem")
    (cluster.repo / "targets.d" / "api.yaml").write_text(
        f"targets:\n  api: {{transport: http, base_url: '{https.base}'}}\n")
    (cluster.repo / "jobs.d" / "http.yaml").write_text(
        "jobs:\n  probe: {queue: other, targets: [api], steps: "
        "[{http: {url: /health, ca_file: ca.pem, expect: [200]}}]}\n"
        "  keyed: {queue: other, targets: [api], steps: "
        "[{http: {url: /health, headers: {X-Key: env:RUNNER_SECRET_UNSET}}}]}\n")
    dry = cluster.runner("run", "probe", "--dry-run")
    assert "1. http 1: http GET /health expect 200 ca_file ca.pem" in dry.stdout, dry.stderr
    keyed = json.loads(cluster.runner("run", "keyed", "--dry-run", "--format", "json").stdout)
    assert keyed["steps"][0]["http"]["headers"] == {
        "X-Key": "<secret env:RUNNER_SECRET_UNSET: not set>"}
    cluster.worker("side")
    done = cluster.runner("run", "probe", "--enqueue", "--wait", "--format", "json")
    record = json.loads(done.stdout)
    assert record["state"] == "SUCCESS", done.stdout
    assert record["targets"]["api"]["stdout"].startswith(f"GET {https.base}/health: 200 OK\n")


def test_the_readme_example_validates(tmp_path: Path) -> None:
    section = README.split("#### HTTP checks", 1)[1].split("\n### ", 1)[0]
    blocks = re.findall(r"```yaml\n# (\S+):?.*?\n(.*?)```", section, re.S)
    assert [path.rstrip(":") for path, _ in blocks] == ["targets.d/api.yaml", "jobs.d/probes.yaml"]
    repo = shutil.copytree(BASE, tmp_path / "repo")
    for path, text in blocks:
        (repo / path.rstrip(":")).write_text(text)
    (repo / "files" / "internal-ca.pem").write_text("placeholder\n")
    result = CliRunner().invoke(cli, ["validate", "--repo", str(repo), "--no-cache"])
    assert result.exit_code == 0, result.output
