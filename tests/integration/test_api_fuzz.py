"""The API's OpenAPI document fuzzed with schemathesis against a real server (Redis store, a
worker), as an operator and without a token: no input gives a 500, and every response has a
status code, content type and body that the document declares for it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.helpers.api import OPS, conforms, start_api
from tests.helpers.cluster import Cluster


def _fuzz(url: str, token: str | None, tmp: Path) -> subprocess.CompletedProcess[str]:
    cli = Path(sys.executable).with_name("schemathesis")
    headers = ["-H", f"Authorization: Bearer {token}"] if token else []
    return subprocess.run(
        [str(cli), "run", f"{url}/openapi.json", "--checks",
         "not_a_server_error,status_code_conformance,content_type_conformance,"
         "response_schema_conformance",
         "--max-examples", "40", "--generation-deterministic", "--request-timeout", "20",
         "--phases", "examples,coverage,fuzzing", *headers],
        capture_output=True, text=True, timeout=540, cwd=tmp,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp), "NO_COLOR": "1"})


def test_no_request_gives_a_server_error(redis_cluster: Cluster, tmp_path: Path
                                         ) -> None:
    server = start_api(redis_cluster)
    try:
        redis_cluster.worker("busy")
        with server.client(OPS) as ops:  # something to read: a finished run
            assert ops.post("/api/jobs/quick-low/run").status_code == 201
        for token in (OPS, None):
            done = _fuzz(server.url, token, tmp_path)
            summary = done.stdout[-3000:]
            assert done.returncode == 0, summary + done.stderr[-2000:]
            cases = re.search(r"(\d+) generated, (\d+) passed", done.stdout)
            assert cases and cases[1] == cases[2] and int(cases[1]) > 100, summary
            assert "22 selected / 22 total" in done.stdout  # every operation was exercised
        with server.client(OPS) as ops:  # the runs it left, finished, cancelled, whole
            conforms(ops)
        assert "Traceback" not in server.log.read_text()
    finally:
        server.stop()
