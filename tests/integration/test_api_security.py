"""`runner api`'s boundaries, against a real server: JWT lifetime, audience and issuer; the
Host allow-list (DNS rebinding); the security headers on every response; and what a viewer
can read (no credential of a git URL, no path of the state directory)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers.api import VIEW, Api, start_api, ws_events
from tests.helpers.cluster import Cluster
from tests.helpers.procs import poll
from tests.servers import free_port

KEY = "jwt-signing-key-0123456789abcdef0123456789"
ISSUER = "https://idp.example"


@pytest.fixture
def jwt_api(redis_cluster: Cluster) -> Iterator[Api]:
    server = start_api(redis_cluster, {
        "RUNNER_API_JWT_KEY": "env:TEST_JWT_KEY", "TEST_JWT_KEY": KEY,
        "RUNNER_API_JWT_MAX_LIFETIME": "10m", "RUNNER_API_JWT_AUDIENCE": "runner",
        "RUNNER_API_JWT_ISSUER": ISSUER})
    yield server
    server.stop()


def token(**claims: Any) -> str:
    import jwt

    now = int(time.time())
    base = {"role": "viewer", "sub": "carol", "iat": now, "exp": now + 300, "aud": "runner",
            "iss": ISSUER}
    return jwt.encode({k: v for k, v in {**base, **claims}.items() if v is not None}, KEY,
                      algorithm="HS256")


def test_a_jwt_needs_exp_within_the_max_lifetime_and_the_audience_and_issuer(
        jwt_api: Api) -> None:
    now = int(time.time())
    with jwt_api.client(token()) as good:
        assert good.get("/api/whoami").json() == {"name": "carol", "role": "viewer"}
    refused = {
        'missing the "exp" claim': token(exp=None),
        "RUNNER_API_JWT_MAX_LIFETIME": token(exp=now + 3600),  # iat .. exp: an hour
        "RUNNER_API_JWT_MAX_LIFETIME (600": token(iat=None, exp=now + 3600),  # now .. exp
        "Audience doesn't match": token(aud="someone-else"),
        'missing the "aud"': token(aud=None),
        "Invalid issuer": token(iss="https://other.example"),
        "Signature has expired": token(iat=now - 400, exp=now - 100),
    }
    for says, bad in refused.items():
        with jwt_api.client(bad) as c:
            r = c.get("/api/status")
            assert r.status_code == 401, (says, r.text)
            assert says in r.json()["detail"], (says, r.json())
        ws = ws_events(jwt_api.url, bad)  # the WebSocket asks the same
        from websockets.exceptions import ConnectionClosed

        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401, says


def test_a_websocket_opened_with_a_jwt_closes_when_the_jwt_expires(jwt_api: Api) -> None:
    from websockets.exceptions import ConnectionClosed

    ws = ws_events(jwt_api.url, token(exp=int(time.time()) + 3))
    assert json.loads(ws.recv(timeout=30))["kind"] == "snapshot"
    with pytest.raises(ConnectionClosed) as closed:
        end = time.monotonic() + 30
        while time.monotonic() < end:
            ws.recv(timeout=max(0.1, end - time.monotonic()))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    assert closed.value.rcvd.reason == "the token expired"


def _handshake(port: int, host: str) -> str:
    """The status line the server answers a WebSocket handshake with `host`."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET /api/events HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        return s.recv(4096).decode("latin-1").split("\r\n", 1)[0]


def test_other_host_names_are_answered_400(embedded_cluster: Cluster) -> None:
    server = start_api(embedded_cluster, {"RUNNER_API_ALLOWED_HOSTS": "Runner.Example"})
    try:
        port = server.port
        with server.client(VIEW) as c:
            for path in ("/metrics", "/api/health", "/api/runs", "/api/status", "/",
                         "/docs", "/static/app.js"):
                for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example",
                             "localhost.evil.example", ""):
                    r = c.get(path, headers={"Host": host})
                    assert r.status_code == 400, (path, host, r.status_code)
                    assert "RUNNER_API_ALLOWED_HOSTS" in r.text
                for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost",
                             f"[::1]:{port}", "runner.example", f"runner.example:{port}"):
                    assert c.get(path, headers={"Host": host}).status_code == 200, (path, host)
            # a page of runs kept for the token is not answered to another Host either
            assert c.get("/api/runs", headers={"Host": "evil.example"}).status_code == 400
        assert _handshake(port, "evil.example") == "HTTP/1.1 400 Bad Request"
        assert _handshake(port, f"localhost:{port}") == "HTTP/1.1 101 Switching Protocols"
    finally:
        server.stop()


HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


def test_every_response_carries_the_security_headers(embedded_cluster: Cluster
                                                     ) -> None:
    server = start_api(embedded_cluster)
    try:
        with server.client(VIEW) as c, server.client(None) as anon:
            answers = [c.get(p) for p in (
                "/", "/docs", "/openapi.json", "/api/health", "/metrics", "/api/whoami",
                "/api/runs", "/api/runs",  # the second from the kept page, before FastAPI
                "/static/app.js", "/static/style.css", "/docs/static/swagger-ui-bundle.js",
                "/favicon.ico", "/api/runs/nope")]
            answers += [anon.get("/api/status"), c.post("/api/jobs/quick-high/run")]
            assert [r.status_code for r in answers] == [200] * 12 + [404, 401, 403]
            for r in answers:
                assert {k: r.headers.get(k) for k in HEADERS} == HEADERS, r.url
                csp = dict(d.strip().split(" ", 1)
                           for d in r.headers["content-security-policy"].split(";"))
                assert csp["script-src"] == "'self'" and csp["style-src"] == "'self'", r.url
                assert csp["frame-ancestors"] == "'none'" and csp["object-src"] == "'none'"
                assert "unsafe" not in r.headers["content-security-policy"]
            for page in ("/", "/docs"):  # what the policy would block: none in our pages
                html = c.get(page).text
                assert not re.search(r"<script(?![^>]*\bsrc=)", html), page
                assert not re.search(r"\s(on[a-z]+|style)=", html), page
    finally:
        server.stop()


def test_a_viewer_learns_no_credential_of_a_git_url_nor_a_state_path(
        redis_cluster: Cluster) -> None:
    """The reconciler records its source and fetch error, the publisher its remote and
    git directory: what the API passes on hides the URLs' user and password and the path."""
    server = start_api(redis_cluster)
    try:
        ws = ws_events(server.url, VIEW)
        snapshot = ws.recv(timeout=30)
        source = f"https://alice:s3cret-pw@127.0.0.1:{free_port()}/config.git"
        done = redis_cluster.runner("reconcile", "--once", "--source", source)
        assert "s3cret-pw" in redis_cluster.store.get("reconcile")["fetch_error"], done.stderr
        git_dir = str(redis_cluster.repo / ".runner" / "reports.git")
        remote = "https://bob:push-tok3n@git.example/reports.git"
        redis_cluster.store.put("reports", {  # as the publisher writes it
            "branch": "reports", "head": None, "remote": remote, "unpushed": 1,
            "last_error": f"cannot push refs/heads/reports to {remote}: refused",
            "git_dir": git_dir, "at": time.time()})
        events = [snapshot]
        poll(lambda: events.append(ws.recv(timeout=30)) or '"reports"' in events[-1], 30,
             "the reports event")
        with server.client(VIEW) as viewer:
            status = viewer.get("/api/status").json()
        seen = "\n".join([*events, json.dumps(status)])
        assert status["source"] == source.replace("alice:s3cret-pw", "***")
        assert "https://***@git.example/reports.git" in status["reports"]["last_error"]
        assert any('"kind": "reconcile"' in e for e in events)
        for secret in ("s3cret-pw", "alice", "push-tok3n", "bob:", git_dir):
            assert secret not in seen, secret
        ws.close()
    finally:
        server.stop()


@pytest.mark.parametrize(("variables", "says"), [
    ({"RUNNER_API_ALLOWED_HOSTS": "https://runner.example"},
     "RUNNER_API_ALLOWED_HOSTS entry 'https://runner.example' is not a host name"),
    ({"RUNNER_API_ALLOWED_HOSTS": "runner.example:443"},
     "RUNNER_API_ALLOWED_HOSTS entry 'runner.example:443' is not a host name"),
    ({"RUNNER_API_JWT_AUDIENCE": "runner"},
     "RUNNER_API_JWT_AUDIENCE is set but RUNNER_API_JWT_KEY is not"),
    ({"RUNNER_API_JWT_MAX_LIFETIME": "forever"},
     "RUNNER_API_JWT_MAX_LIFETIME='forever' is not a number"),
])
def test_malformed_api_settings_exit_2(embedded_cluster: Cluster,
                                       variables: dict[str, str], says: str) -> None:
    done = subprocess.run([sys.executable, "-m", "runner", "api", "--repo",
                           str(embedded_cluster.repo), "--bind", "127.0.0.1:1"],
                          capture_output=True, text=True, timeout=60,
                          env={**embedded_cluster.env, **variables})
    assert done.returncode == 2, done.stderr
    assert says in done.stderr and "Traceback" not in done.stderr
