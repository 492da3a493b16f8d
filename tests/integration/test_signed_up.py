"""Issue 16, finding 11: `runner up --require-signed KEYRING` (or RUNNER_REQUIRE_SIGNED) runs
only commits signed by a key of KEYRING — real SSH signatures (ssh-keygen) and real GnuPG
ones. An unsigned or foreign-signed head is refused with the reason in `runner status`, the
API and the dashboard; the last signed revision keeps running; before any signed revision,
nothing of the repository runs (not even from its directory)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from runner.store.files import FileStore
from tests.helpers.procs import poll
from tests.helpers.repos import GIT_ENV, git, runner
from tests.servers import keygen, runner_up


@dataclass(frozen=True)
class Keys:
    keyring: Path  # what runner verifies with
    sign: dict[str, tuple[list[str], dict[str, str]]]  # signer -> git options, environment


@contextlib.contextmanager
def ssh_keys(tmp: Path) -> Iterator[Keys]:
    trusted = keygen(tmp / "trusted").split()
    keygen(tmp / "stranger")
    allowed = tmp / "allowed_signers"
    allowed.write_text(f"t@example.invalid {trusted[0]} {trusted[1]}\n")
    yield Keys(allowed, {who: (["-c", "gpg.format=ssh", "-c", f"user.signingkey={tmp / who}"],
                               {}) for who in ("trusted", "stranger")})


@contextlib.contextmanager
def gpg_keys(_tmp: Path) -> Iterator[Keys]:
    gpg = shutil.which("gpg")
    assert gpg, "gpg not found: install gnupg (.ci/run does)"
    root = Path(tempfile.mkdtemp(prefix="g", dir="/tmp"))  # agent sockets need a short path
    homes = {name: root / name for name in ("trusted", "stranger", "keyring")}
    try:
        for home in homes.values():
            home.mkdir(mode=0o700)
        for who in ("trusted", "stranger"):
            subprocess.run([gpg, "--homedir", str(homes[who]), "--batch", "--quiet",
                            "--passphrase", "", "--quick-gen-key", f"{who} <t@example.invalid>",
                            "ed25519", "sign", "never"], check=True, capture_output=True)
        public = subprocess.run([gpg, "--homedir", str(homes["trusted"]), "--export",
                                 "--armor"], check=True, capture_output=True).stdout
        subprocess.run([gpg, "--homedir", str(homes["keyring"]), "--batch", "--quiet",
                        "--import"], input=public, check=True, capture_output=True)
        yield Keys(homes["keyring"], {who: (["-c", f"gpg.program={gpg}", "-c",
                                             f"user.signingkey={who} <t@example.invalid>"],
                                            {"GNUPGHOME": str(homes[who])})
                                      for who in ("trusted", "stranger")})
    finally:
        for home in homes.values():
            subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"],
                           check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def committer(repo: Path, keys: Keys) -> Callable[[dict[str, str | None], str | None], str]:
    """Writes files (None deletes), commits them signed by `who` (None: unsigned); the id."""
    def commit(files: dict[str, str | None], who: str | None) -> str:
        for rel, text in files.items():
            if text is None:
                (repo / rel).unlink()
            else:
                (repo / rel).write_text(text)
        git(repo, "add", "-A")
        options, env = keys.sign[who] if who else ([], {})
        subprocess.run(["git", "-C", str(repo), *options, "commit", *(["-S"] if who else []),
                        "-q", "-m", f"by {who or 'nobody'}"],
                       env={**os.environ, **GIT_ENV, **env}, check=True, capture_output=True)
        return git(repo, "rev-parse", "HEAD")
    return commit


def every(name: str, period: str) -> str:
    return f"schedules:\n  {name}: {{job: health-check, every: {period}, overlap: allow}}\n"


@pytest.mark.parametrize("kind", ["ssh", "gpg"])
def test_up_runs_only_signed_heads(demo_repo: Path, tmp_path: Path, kind: str) -> None:
    keyring_of = ssh_keys if kind == "ssh" else gpg_keys
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "RUNNER_API_TOKENS", "RUNNER_REQUIRE_SIGNED")}
    with keyring_of(tmp_path) as keys:
        commit = committer(demo_repo, keys)
        (demo_repo / ".gitignore").write_text(".runner/\n")
        first = commit({"schedules.d/ops.yaml": None,
                        "schedules.d/unsigned.yaml": every("unsigned", "1s")}, None)
        # the option, or the setting: both reach the reconciler (and every child)
        args = ["--require-signed", str(keys.keyring)] if kind == "ssh" else []
        if kind == "gpg":
            env["RUNNER_REQUIRE_SIGNED"] = str(keys.keyring)
        log = tmp_path / "up.log"
        with runner_up(demo_repo, log, *args, env=env):
            store = FileStore(demo_repo / ".runner" / "state")

            def refused(head: str) -> str:
                return poll(lambda: re.search(
                    rf"head commit {head[:12]} is not signed by a key of \S+ \(.+\); it is not "
                    "applied", str((store.get("reconcile") or {}).get("refused"))), 60,
                    f"{head[:12]} refused")[0]

            refused(first)
            good = commit({"schedules.d/unsigned.yaml": None,
                           "schedules.d/fast.yaml": every("fast", "2s")}, "trusted")
            poll(lambda: (store.get("reconcile") or {}).get("applied_revision") == good, 60,
                 "the signed commit is applied")
            poll(lambda: [r for r in store.runs(limit=50) if r.state == "SUCCESS"], 60,
                 "its schedule fires and the run succeeds")
            bad = commit({"schedules.d/fast.yaml": None,
                          "schedules.d/other.yaml": every("other", "1s")}, None)
            reason = refused(bad)
            since = time.time()
            poll(lambda: [r for r in store.runs(limit=50) if r.created > since
                          and r.state == "SUCCESS"], 60, "the signed revision keeps running")
            assert (store.get("reconcile") or {})["applied_revision"] == good
            shown(demo_repo, log, reason, browser=kind == "ssh")
            refused(commit({"schedules.d/other.yaml": every("other", "3s")}, "stranger"))
            runs = store.runs(limit=500)
    assert runs and {(r.schedule, r.revision) for r in runs} == {("fast", good)}


def shown(repo: Path, log: Path, reason: str, browser: bool) -> None:
    """The reason is in `runner status`, GET /api/status and the dashboard."""
    done = runner("status", "--repo", str(repo))
    assert done.returncode == 0 and f"  {reason}\n" in done.stdout, done.stdout
    bind = poll(lambda: re.search(r"api on (127\.0\.0\.1:\d+)", log.read_text()), 30,
                "up names its API address")[1]
    token = (repo / ".runner" / "api-token").read_text().strip()
    url = f"http://{bind}"
    status = poll(lambda: _get(f"{url}/api/status", token), 30, "the API answers")
    assert status["refused"] == reason
    if not browser:
        return
    from playwright.sync_api import expect, sync_playwright

    from tests.helpers.api import ARGS, CHROMIUM

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = chromium.new_page()
            page.goto(url + "/")
            page.fill("#token", token)
            page.click("#login button")
            expect(page.locator("#error-list")).to_contain_text(reason, timeout=30_000)
        finally:
            chromium.close()


def _get(url: str, token: str) -> dict[str, object] | None:
    try:
        r = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5)
    except httpx.TransportError:
        return None
    return r.json() if r.status_code == 200 else None  # type: ignore[no-any-return]


def test_up_requiring_signatures_without_a_git_source_exits_2(tmp_path: Path) -> None:
    from tests.helpers.repos import copy_demo, up_fails
    from tests.servers import free_port

    repo = copy_demo(tmp_path / "plain")  # a directory, no git: nothing could be verified
    (tmp_path / "allowed").write_text("")
    code, err, _ = up_fails(repo, "--require-signed", str(tmp_path / "allowed"), "--api-bind",
                            f"127.0.0.1:{free_port()}",
                            env={"RUNNER_CACHE_DIR": str(tmp_path / "cache")})
    assert (code, err) == (2, f"error: --require-signed {tmp_path / 'allowed'}: {repo} is not "
                              "a git repository and there is no --source, so there are no "
                              "commits to verify\n")


def test_an_applied_head_is_verified_again_once_signatures_are_required(
        demo_repo: Path, tmp_path: Path) -> None:
    """Turning the keyring on: status says the running (unsigned) head is refused."""
    from tests.helpers.repos import copy_demo

    state = copy_demo(tmp_path / "home")
    (tmp_path / "allowed").write_text("")
    head = git(demo_repo, "rev-parse", "HEAD")
    once = ("reconcile", "--once", "--source", str(demo_repo), "--repo", str(state))
    assert runner(*once).returncode == 0
    done = runner(*once, "--require-signed", str(tmp_path / "allowed"))
    assert done.returncode == 1
    assert f"head commit {head[:12]} is not signed" in done.stderr
    refused = FileStore(state / ".runner" / "state").get("reconcile") or {}
    assert refused["refused"].startswith(f"head commit {head[:12]} is not signed")
