"""Attacks on this session's new surfaces, each from a role the README's Security model names:
a remote host answering `runner discover ssh`, an HTTP endpoint an http step calls, a config
author naming limits and files, an API viewer. Each test fails if its boundary breaks."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest
import yaml

from runner.config.model import Channel, SecretRef, job, target
from runner.discover.propose import KNOWN_HOSTS, TARGETS
from runner.executor.base import MASK, TargetResult
from runner.executor.engine import Engine
from runner.notify.send import send
from runner.runs import RunRecord
from runner.settings import Settings
from tests.helpers.api import VIEW, start_api
from tests.helpers.cluster import make_cluster
from tests.helpers.hostile import (
    banner_proxy,
    disconnect_server,
    drip_server,
    reflect_server,
    ssh_server,
)
from tests.helpers.receivers import http_receiver
from tests.helpers.repos import copy_demo, git, runner_on
from tests.servers import Sshd

TOKEN = "tok-5f3c9a1e-very-secret"
WORKTREE = {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}
# what a hostile host says: terminal escapes, YAML syntax, a DEL, a C1 control, a NEL and a
# Unicode non-character (the last three are characters YAML refuses or folds), a line separator
FACTS = ("evil\x1b]0;owned\x07: {x: 1}\n"
         "Linux\x7f\x9b31m\n"
         "6.1\u2028#\x85 - [a]\n"
         "ubuntu\ufffe\n"
         "22.04\r\x1b[2J\n").encode() + b"\xff\xfe not utf-8\n"


def _printable(text: str) -> bool:
    return all(c.isprintable() or c == "\n" for c in text)


def test_what_remote_hosts_say_reaches_the_proposal_and_the_terminal_only_as_printable_text(
        sshd: Sshd, tmp_path: Path) -> None:
    """A banner with a DEL and an escape, facts with YAML syntax, control characters, invalid
    UTF-8 and output without end: the hosts are still proposed, the YAML loads to printable
    strings, the known_hosts holds only their two keys, the terminal gets no control byte."""
    repo = copy_demo(tmp_path / "config")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "demo")
    banner = b"SSH-2.0-Open\x7fSSH\x1b[2J\x1b]0;owned\x07 {a: [b]}"
    with ssh_server("127.0.0.6", FACTS) as talker, \
            banner_proxy("127.0.0.7", sshd.port, banner) as proxy, \
            disconnect_server("127.0.0.8", "bye\x1b[2J\x1b]0;owned\x07\nline 2") as gone:
        started = time.monotonic()
        done = runner_on(repo, "discover", "ssh", f"127.0.0.6:{talker}", f"127.0.0.7:{proxy}",
                         f"127.0.0.8:{gone}", "--user", "someone", "--timeout", "5",
                         env=WORKTREE)
        took = time.monotonic() - started
    out = done.stdout + done.stderr
    assert "Traceback" not in out and done.returncode == 0, out
    assert _printable(out), repr(out)
    assert f"127.0.0.8:{gone} (bye?[2J?]0;owned??line 2)" in out  # its disconnect's words
    assert took < 5, took  # the facts are read as far as needed, not until the timeout
    branch = git(repo, "branch", "--list", "discovery/*").strip(" *")
    found = yaml.safe_load(git(repo, "show", f"{branch}:{TARGETS}"))["targets"]
    (talked, t), (_, p) = found.items()
    assert re.fullmatch(r"evil[a-z0-9._-]*", talked)
    assert (t["host"], p["host"]) == ("127.0.0.6", "127.0.0.7")
    strings = [t["description"], p["description"], *t["labels"].values(),
               *p["labels"].values()]
    assert all(isinstance(s, str) and _printable(s) for s in strings), strings
    assert (t["labels"]["os"], t["labels"]["os_version"]) == ("ubuntu?", "22.04??[2J")
    assert "Linux" in t["description"]
    assert p["description"].startswith("SSH-2.0-Open")
    keys = git(repo, "show", f"{branch}:{KNOWN_HOSTS}").splitlines()
    assert [k.split()[0] for k in keys] == [f"[127.0.0.6]:{talker}", f"[127.0.0.7]:{proxy}"]
    assert runner_on(repo, "validate", env=WORKTREE).returncode == 0


@pytest.mark.parametrize(("head", "drip"), [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", b"x"),  # a body without end
    (b"HTTP/1.0 200 OK\r\n\r\n", b"x"),  # read until the endpoint closes: it never does
    (b"HTTP/1.1 200 OK\r\n", b"X-Slow: y\r\n"),  # headers without end
], ids=["body", "until-close", "headers"])
def test_an_endpoint_answering_a_byte_at_a_time_fails_the_step_within_its_timeout(
        head: bytes, drip: bytes) -> None:
    """Each read gets a byte well within the timeout: the whole answer is what it bounds."""
    with drip_server(head, drip, every=0.05, budget=8) as port:
        started = time.monotonic()
        result = _http({"url": f"http://127.0.0.1:{port}/", "timeout": "1s"})
        took = time.monotonic() - started
    assert result.status == "failed", result
    assert "no complete answer within 1s (timeout)" in str(result.error), result
    assert took < 3, took


@pytest.mark.parametrize("status", [b"HTTP/1.1 2\x1b[2J00 OK", b"\x1b]0;owned\x07 200 OK"])
def test_an_endpoint_s_bytes_reach_the_error_only_escaped(status: bytes) -> None:
    """A status line that is not HTTP: the error says so and quotes it, controls escaped (it
    is printed by `runner run`, notified, committed)."""
    with drip_server(status + b"\r\n\r\n", b" ", every=0.01, budget=0) as port:
        result = _http({"url": f"http://127.0.0.1:{port}/"})
    error = str(result.error)
    assert result.status == "failed" and error.isprintable(), error
    assert "its answer does not start with an HTTP status line" in error


def test_an_endpoint_cannot_bring_a_header_secret_into_the_error_by_a_redirect() -> None:
    """It redirects to a URL holding the token it was sent, then answers 503: the error
    (saved, published, notified) names that URL masked, as the output does."""
    with reflect_server() as port:
        result = _http({"url": f"http://127.0.0.1:{port}/",
                        "headers": {"Authorization": "env:RUNNER_SECRET_TOKEN"}})
    assert result.status == "failed" and "returned 503" in str(result.error), result
    assert TOKEN not in str(result.error) + result.stdout
    assert f"/back?t={MASK} returned 503" in str(result.error)


def test_an_endpoint_echoing_a_secret_across_the_output_cut_shows_no_part_of_it() -> None:
    """The answer is cut to fit the output cap: a secret the body echoes where the cut falls
    must be masked whole, not shown up to the cut (two offsets: one of them splits it)."""
    shown = []
    with reflect_server() as port:
        for shift in (0, len(TOKEN) // 2):
            result = _http({"url": f"http://127.0.0.1:{port}/long/{shift}",
                            "headers": {"Authorization": "env:RUNNER_SECRET_TOKEN"}},
                           Settings(output_cap=2048))
            assert result.status == "success" and "body cut at" in result.stdout, result
            shown.append(result.stdout.replace(MASK, ""))
    assert all(TOKEN[:4] not in text for text in shown), shown


def _http(step: dict[str, object], settings: Settings | None = None) -> TargetResult:
    """The result of one http step on a local target, run by the engine in this process."""
    j = job("probe", {"queue": "q", "targets": ["l"], "steps": [{"http": step}]})

    async def main() -> TargetResult:
        engine = Engine(settings, environ={"RUNNER_SECRET_TOKEN": TOKEN})
        try:
            done = await engine.run(j, {"l": target("l", {"transport": "local"})}, {},
                                    run_id="r1", revision="rev")
        finally:
            await engine.close()
        return done.targets["l"]

    return asyncio.run(main())


CURSORS = ["reports:1e300:x", "reports:-1e300:x", "reports:1e18:x", "1e300:x", "-1e300:x",
           "reports:0:../../../HEAD", "reports:1:x\n", "reports:nan:x", "reports:1:" + "a" * 150]


def test_a_viewer_s_odd_cursors_are_refused_or_answered_never_a_server_error(
        tmp_path: Path) -> None:
    """Cursors this API never gave, into the store and the report branch: 400 or a page,
    never a 500 with a traceback in the API's log."""
    cluster = make_cluster(tmp_path, None)
    git(cluster.repo, "init", "-q", "-b", "main")
    git(cluster.repo, "add", "-A")
    git(cluster.repo, "commit", "-qm", "config")
    now = time.time()
    cluster.store.save_runs([RunRecord.from_json({
        "run_id": f"{int(now * 1000):012x}-00000001", "job": "quick-low", "state": "SUCCESS",
        "queue": "low", "trigger": "api", "created": now, "finished": now + 1})])
    assert cluster.runner("publish", "--once").returncode == 0
    api = start_api(cluster)
    try:
        with api.client(VIEW) as viewer:
            codes = {c: viewer.get("/api/runs", params={"cursor": c}).status_code
                     for c in CURSORS}
    finally:
        api.stop()
    assert all(code in (200, 400, 422) for code in codes.values()), codes
    assert "Traceback" not in api.log.read_text()


def test_an_error_a_remote_host_wrote_reaches_slack_as_text_not_as_a_mention_or_link() -> None:
    """Errors quote what endpoints and hosts said (a redirect's URL, a command's words):
    in a Slack message `<!channel>` must not notify everyone, nor `<URL|text>` hide a link."""
    said = "GET https://api/<!channel> returned 503 <https://evil.example|see the fix> & co"
    with http_receiver() as got:
        send(Channel("slack", "slack", SecretRef("env:X")), got.url("/slack"),
             {"event": "failed", "job": "probe", "run_id": "r1", "status": "FAILURE",
              "error": said, "failed_targets": {"api": said}, "revision": None, "link": None},
             5.0)
    text = dict(got.accepted)["/slack"]["text"]
    assert "<" not in text and ">" not in text, text
    assert "&lt;!channel&gt; returned 503 &lt;https://evil.example|see the fix&gt; &amp; co" in text


@pytest.mark.parametrize(("file", "text", "says"), [
    ("jobs.d/x.yaml", 'jobs:\n  "evil\\n": {queue: system, targets: [localhost], '
     'steps: [{command: "true"}]}\n', "job name 'evil\\n' is not valid"),
    ("targets.d/x.yaml", 'targets:\n  "web\\n": {transport: local}\n',
     "target name 'web\\n' is not valid"),
    ("queues.yaml", None, "'db\\n'"),
], ids=["job", "target", "limit"])
def test_a_name_with_a_trailing_newline_is_refused(tmp_path: Path, file: str, text: str | None,
                                                   says: str) -> None:
    """Names become file names, store keys and report paths: the schema's `^...$` must mean
    the whole text, as JSON Schema (ECMA-262) reads `$`, not Python's 'or before a final
    newline'."""
    repo = copy_demo(tmp_path / "config")
    if text is None:
        text = (repo / "queues.yaml").read_text() + (
            'limits:\n  "db\\n": {max: 1, targets: [localhost]}\n')
    (repo / file).write_text(text)
    done = runner_on(repo, "validate", env={**WORKTREE, "RUNNER_CACHE_DIR": str(tmp_path)})
    assert done.returncode == 1 and says in done.stdout, done.stdout + done.stderr
