"""The engine against a real OpenSSH sshd on loopback: every failure mode, one target at a time
and many in parallel."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from runner.config import model
from runner.executor.base import FileBlob, RunResult, Tail, TargetResult
from runner.executor.cancel import Cancel
from runner.executor.engine import Engine
from runner.executor.ssh import SshPool
from runner.settings import Settings
from tests.helpers.procs import gone, matching, poll, running, watching
from tests.helpers.ssh import make_job, one, run
from tests.servers import Sshd, free_port, keygen


def test_command_env_output_and_exit_code(sshd: Sshd) -> None:
    t = one(sshd, [{"command": "echo \"$GREETING\"; echo to-stderr >&2"}],
            env={"GREETING": "hello 'quoted' $world"})
    assert (t.status, t.rc, t.error) == ("success", 0, None)
    assert t.stdout == "hello 'quoted' $world\n"
    assert t.stderr == "to-stderr\n"  # the runner-pid line is taken out


@pytest.mark.parametrize(("when", "ran"), [
    ("on_success", False), ("on_failure", True), ("always", True)])
def test_when_after_a_failed_step(sshd: Sshd, when: str, ran: bool) -> None:
    t = one(sshd, [{"name": "breaks", "command": "echo before; exit 3"},
                   {"name": "next", "command": "echo next-ran", "when": when}])
    assert (t.status, t.rc) == ("failed", 3)
    assert t.error == "t: step 'breaks' exited with status 3"
    assert ("next-ran" in t.stdout) is ran
    assert [s.name for s in t.steps] == (["breaks", "next"] if ran else ["breaks"])


def test_on_failure_steps_do_not_run_after_success(sshd: Sshd) -> None:
    t = one(sshd, [{"command": "true"}, {"command": "echo alarm", "when": "on_failure"},
                   {"command": "echo finally", "when": "always"}])
    assert t.status == "success"
    assert t.stdout == "finally\n"


def test_timeout_kills_the_remote_command_and_its_children(sshd: Sshd) -> None:
    t0 = time.monotonic()
    with watching(sshd.proc.pid, "sleep 41.3") as sleeps:
        t = one(sshd, [{"command": "sh -c 'sleep 41.3' & sleep 41.3; echo never"},
                       {"command": "echo cleanup", "when": "on_failure"}], timeout="1s")
    assert time.monotonic() - t0 < 10
    assert t.status == "timeout"
    assert t.error == "t: timed out after 1s in step 'command 1'; its command was killed"
    assert sleeps and gone(sleeps), "the remote command survived its timeout"


def test_the_remote_command_dies_when_its_connection_drops(sshd: Sshd) -> None:
    """kill -9 of the process holding the connection: sshd closes the session, and the
    remote command (no pty) is killed with its children instead of running on."""
    import multiprocessing
    import signal

    holder = multiprocessing.get_context("fork").Process(
        target=one, args=(sshd, [{"command": "sleep 62.3 & sleep 62.4; echo done"}]))
    holder.start()
    poll(lambda: running(sshd.proc.pid, "sleep 62.4"), 30, "the remote command never started")
    sleeps = matching(sshd.proc.pid, "sleep 62.")  # both sleeps, and their shell
    assert holder.pid is not None
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)
    assert gone(sleeps, 10)


def test_step_timeout_then_on_failure_step_runs(sshd: Sshd) -> None:
    with watching(sshd.proc.pid, "sleep 42.1") as sleeps:
        t = one(sshd, [{"name": "slow", "command": "sleep 42.1", "timeout": "1s"},
                       {"command": "echo cleanup", "when": "on_failure"}])
    assert t.status == "timeout"
    assert t.error == "t: step 'slow' timed out after 1s; its command was killed"
    assert [s.status for s in t.steps] == ["timeout", "success"]
    assert t.stdout == "cleanup\n"
    assert sleeps and gone(sleeps)


def test_unknown_host_key_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    t = one(sshd, [{"command": "echo must-not-run"}],
            target=sshd.target(known_hosts=str(empty)))
    assert t.status == "failed"
    assert t.error is not None
    assert t.error == (f"t: host key of 127.0.0.1:{sshd.port} is not in known_hosts {empty} as "
                       f"[127.0.0.1]:{sshd.port}; refused (check its fingerprint, then add it: "
                       f"ssh-keyscan -p {sshd.port} 127.0.0.1 >> {empty})")
    assert t.steps == ()


def test_missing_known_hosts_file_refuses_too(sshd: Sshd, tmp_path: Path) -> None:
    t = one(sshd, [{"command": "true"}],
            target=sshd.target(known_hosts=str(tmp_path / "absent")))
    assert t.status == "failed"
    assert "is not in known_hosts" in (t.error or "")


def test_changed_host_key_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    other = keygen(tmp_path / "other").split()
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {other[0]} {other[1]}\n")
    t = one(sshd, [{"command": "true"}], target=sshd.target(known_hosts=str(known)))
    assert t.status == "failed"
    assert f"host key of 127.0.0.1:{sshd.port} has CHANGED" in (t.error or "")


def test_wrong_key_is_an_auth_failure(sshd: Sshd, tmp_path: Path) -> None:
    keygen(tmp_path / "stranger")
    t = one(sshd, [{"command": "true"}],
            target=sshd.target(key_file=str(tmp_path / "stranger")))
    assert t.status == "failed"
    assert t.error == (f"t: authentication to 127.0.0.1:{sshd.port} as {sshd.user} failed: "
                       f"the server refused key_file {tmp_path}/stranger")


def test_closed_port_is_unreachable(sshd: Sshd) -> None:
    port = free_port()
    t = one(sshd, [{"command": "true"}], target=sshd.target(port=port))
    assert t.status == "failed"
    assert (t.error or "").startswith(f"t: cannot connect to 127.0.0.1:{port}")


def test_upload_download_round_trip_binary(sshd: Sshd, tmp_path: Path) -> None:
    payload = bytes(range(256)) * 300 + b"\x00\r\n end"
    dest = tmp_path / "deep" / "dir" / "blob.bin"
    t = one(sshd, [{"upload": {"src": "files/blob.bin", "dest": str(dest), "mode": "0751"}},
                   {"download": {"src": str(dest)}},
                   {"download": {"src": str(dest), "max_bytes": 100}}],
            files={"files/blob.bin": FileBlob(payload, 0o644)})
    assert t.status == "success", t.error
    assert dest.read_bytes() == payload
    assert dest.stat().st_mode & 0o777 == 0o751
    assert list(dest.parent.iterdir()) == [dest]  # no temp file left beside it
    assert (t.downloads[0].data(), t.downloads[0].truncated) == (payload, False)
    assert (t.downloads[1].data(), t.downloads[1].truncated) == (payload[:100], True)


def test_upload_keeps_the_repository_mode(sshd: Sshd, tmp_path: Path) -> None:
    dest = tmp_path / "tool.sh"
    t = one(sshd, [{"upload": {"src": "files/tool.sh", "dest": str(dest)}}],
            files={"files/tool.sh": FileBlob(b"#!/bin/sh\n", 0o755)})
    assert t.status == "success"
    assert dest.stat().st_mode & 0o777 == 0o755


def test_download_of_a_missing_file_fails_clearly(sshd: Sshd, tmp_path: Path) -> None:
    t = one(sshd, [{"download": {"src": str(tmp_path / "nope.log")}}])
    assert t.status == "failed"
    assert t.error == f"t: download of {tmp_path}/nope.log failed: no such file: " \
                      f"{tmp_path}/nope.log"


def test_script_runs_with_args_and_leaves_nothing(sshd: Sshd) -> None:
    script = b"#!/bin/sh\necho \"args: $1 / $2\"\necho \"me: $0\" >&2\nexit 4\n"
    t = one(sshd, [{"script": "files/s.sh", "args": ["one two", 3]}],
            files={"files/s.sh": FileBlob(script, 0o755)})
    assert (t.status, t.rc) == ("failed", 4)
    assert t.stdout == "args: one two / 3\n"
    path = t.stderr.removeprefix("me: ").strip()
    assert path.startswith("/tmp/") and not Path(path).exists()


def test_bash_script_without_shebang(sshd: Sshd) -> None:
    t = one(sshd, [{"script": "files/b", "shell": "bash"}],
            files={"files/b": FileBlob(b"x=(a b c)\necho ${#x[@]}\n", 0o644)})
    assert (t.status, t.stdout) == ("success", "3\n")


def test_retries_until_success(sshd: Sshd, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    flaky = (f"n=$(cat {counter} 2>/dev/null || echo 0); echo $((n+1)) > {counter}; "
             "echo try $n; [ $n -ge 2 ]")
    t = one(sshd, [{"command": flaky}], retries={"attempts": 3, "backoff": "0s"})
    assert (t.status, t.attempts) == ("success", 3)
    assert t.stdout == "try 2\n"  # the last attempt's output


def test_retries_give_up(sshd: Sshd) -> None:
    t = one(sshd, [{"command": "exit 7"}], retries={"attempts": 2, "backoff": "0s"})
    assert (t.status, t.rc, t.attempts) == ("failed", 7, 3)


def test_secrets_are_masked_everywhere(sshd: Sshd, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s3cr3t-Value-9"
    monkeypatch.setenv("RUNNER_SECRET_TEST_TOKEN", secret)
    job = make_job([{"command": "echo token=$TOKEN; echo $TOKEN >&2; exit 1"},
                    {"command": "echo ${TOKEN#s3cr3t}", "when": "on_failure"}],
                   env={"TOKEN": "env:RUNNER_SECRET_TEST_TOKEN"})
    result = run(job, {"t": model.target("t", sshd.target())})
    dumped = json.dumps(result.as_dict())
    assert secret not in dumped
    t = result.targets["t"]
    assert t.stdout.startswith("token=********\n")
    assert t.stderr == "********\n"


def test_missing_secret_fails_every_target_clearly(sshd: Sshd) -> None:
    job = make_job([{"command": "true"}], env={"TOKEN": "env:RUNNER_SECRET_UNSET"})
    t = run(job, {"t": model.target("t", sshd.target())}).targets["t"]
    assert t.status == "failed"
    assert t.error == ("t: not run, job j env TOKEN: secret env:RUNNER_SECRET_UNSET is not set "
                       "in the worker's environment")


def test_many_targets_in_parallel_share_pooled_connections(sshd: Sshd) -> None:
    names = [f"web-{i}" for i in range(30)]
    targets = {n: model.target(n, sshd.target()) for n in names}
    job = make_job([{"command": "sleep 0.5; echo $((6*7))"}, {"command": "echo second"}],
                   concurrency=30)
    engine = Engine()

    async def main() -> tuple[RunResult, int]:
        try:
            r = await engine.run(job, targets, {}, run_id="r", revision="v")
            pool: Any = engine.connectors["ssh"]
            return r, sum(len(c) for c in pool._conns.values())
        finally:
            await engine.close()

    t0 = time.monotonic()
    result, connections = asyncio.run(main())
    outcome = {n: (t.status, t.error) for n, t in result.targets.items()}
    assert outcome == dict.fromkeys(names, ("success", None))
    assert all(t.stdout == "42\nsecond\n" for t in result.targets.values())
    assert connections == 4  # 30 targets on one host/user: 9 sessions per connection
    assert time.monotonic() - t0 < 10  # in parallel: 30 x 0.5 s in sequence would be 15 s


def test_connections_are_reused_across_runs_until_idle(sshd: Sshd) -> None:
    targets = {"t": model.target("t", sshd.target())}
    job = make_job([{"command": "echo $PPID"}])

    async def main(idle: float) -> list[str]:
        engine = Engine(Settings(idle_timeout=idle))
        try:
            return [(await engine.run(job, targets, {}, run_id="r", revision="v"))
                    .targets["t"].stdout for _ in range(3)]
        finally:
            await engine.close()

    # the login shell's parent is the sshd session process of that connection
    assert len(set(asyncio.run(main(300)))) == 1
    assert len(set(asyncio.run(main(0)))) == 3


def test_circuit_breaker_skips_a_dead_target_fast(sshd: Sshd) -> None:
    dead = model.target("dead", sshd.target(port=free_port()))
    alive = model.target("alive", sshd.target())
    engine = Engine(Settings(breaker_threshold=2, breaker_cooldown=3600))
    job = make_job([{"command": "true"}])

    async def main() -> list[RunResult]:
        try:
            return [await engine.run(job, {"dead": dead, "alive": alive}, {}, run_id=str(i),
                                     revision="v") for i in range(3)]
        finally:
            await engine.close()

    runs = asyncio.run(main())
    assert [r.targets["dead"].status for r in runs] == ["failed", "failed", "skipped"]
    assert [r.targets["alive"].status for r in runs] == ["success"] * 3
    skipped = runs[2].targets["dead"]
    assert skipped.error is not None
    assert skipped.error.startswith("dead: skipped, 2 connection failures in a row (last: dead: "
                                    "cannot connect")


def test_cancel_stops_running_targets_and_pending_ones(sshd: Sshd) -> None:
    targets = {f"t{i}": model.target(f"t{i}", sshd.target()) for i in range(4)}
    job = make_job([{"command": "sleep 43.7"}], concurrency=2)
    cancel = Cancel()
    started: list[str] = []

    def progress(name: str, result: TargetResult | None) -> None:
        if result is None:
            started.append(name)
            if len(started) == 2:  # both slots busy: cancel from another thread
                threading.Timer(0.5, cancel.set, ("cancelled by test",)).start()

    t0 = time.monotonic()
    with watching(sshd.proc.pid, "sleep 43.7") as sleeps:
        result = run(job, targets, cancel=cancel, progress=progress)
    assert time.monotonic() - t0 < 10
    assert result.status == "cancelled"
    statuses = {n: t.status for n, t in result.targets.items()}
    assert statuses == dict.fromkeys(targets, "cancelled")
    assert result.targets["t0"].error == "t0: cancelled by test during step 'command 1'"
    assert result.targets["t3"].error == "t3: cancelled by test before it started"
    assert sleeps and gone(sleeps)


def test_agent_authentication(sshd: Sshd, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert time.monotonic() < deadline, "ssh-agent did not start"
            time.sleep(0.02)
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        subprocess.run(["ssh-add", "-q", str(sshd.client_key)], env=env, check=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        monkeypatch.setenv("HOME", str(tmp_path))  # no default ~/.ssh keys: the agent only
        plain = sshd.target()
        del plain["key_file"]
        t = one(sshd, [{"command": "echo via-agent"}], target=plain)
        assert (t.status, t.stdout) == ("success", "via-agent\n")
    finally:
        agent.terminate()
        agent.wait(10)


def test_password_authentication_against_an_asyncssh_server(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenSSH here cannot check a password without a system account's password, so an
    asyncssh server on loopback checks it; commands run locally with /bin/sh."""
    secret = "Pw-for-test-5521"
    monkeypatch.setenv("RUNNER_SECRET_SSH_PASSWORD", secret)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    port = free_port()
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_key.export_public_key().decode()}")

    class Server(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, password: str) -> bool:
            return password == secret

    async def shell(process: asyncssh.SSHServerProcess[bytes]) -> None:
        # as sshd: a session of its own, stdin streamed (runner does not end it)
        proc = await asyncio.create_subprocess_shell(
            process.command or "true", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True)
        pipe = proc.stdin
        assert pipe and proc.stdout and proc.stderr

        async def feed() -> None:
            while data := await process.stdin.read(65536):
                pipe.write(data)

        feeding = asyncio.ensure_future(feed())
        out, err = await asyncio.gather(proc.stdout.read(), proc.stderr.read())
        await proc.wait()
        feeding.cancel()
        process.stdout.write(out)
        process.stderr.write(err)
        process.exit(proc.returncode or 0)

    def target(key_file: str | None) -> model.Target:
        return model.target("p", {"transport": "ssh", "host": "127.0.0.1", "port": port,
                                  "user": "tester", "password": "env:RUNNER_SECRET_SSH_PASSWORD",
                                  "known_hosts": str(known),
                                  **({"key_file": key_file} if key_file else {})})

    async def main(key_file: str | None) -> list[TargetResult]:
        server = await asyncssh.create_server(Server, "127.0.0.1", port,
                                              server_host_keys=[host_key], encoding=None,
                                              process_factory=shell)
        engine = Engine(Settings(idle_timeout=0))  # no reuse: the second run logs in again
        try:
            job = make_job([{"command": "echo in; echo $RUNNER_SECRET_SSH_PASSWORD"}])
            good = await engine.run(job, {"p": target(key_file)}, {}, run_id="1", revision="v")
            monkeypatch.setenv("RUNNER_SECRET_SSH_PASSWORD", "wrong")
            bad = await engine.run(job, {"p": target(key_file)}, {}, run_id="2", revision="v")
            return [good.targets["p"], bad.targets["p"]]
        finally:
            await engine.close()
            server.close()

    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh keys: the password alone
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    good, bad = asyncio.run(main(None))
    assert (good.status, good.error, good.stdout) == ("success", None, "in\n********\n")
    assert bad.status == "failed"
    assert bad.error == (f"p: authentication to 127.0.0.1:{port} as tester failed: the server "
                         "refused the agent's and ~/.ssh keys and the password")
    (tmp_path / "garbage").write_text("not a key")
    monkeypatch.setenv("RUNNER_SECRET_SSH_PASSWORD", secret)
    broken = asyncio.run(main(str(tmp_path / "garbage")))[0]
    assert broken.status == "failed"
    assert (broken.error or "").startswith(f"p: cannot load key_file {tmp_path}/garbage: ")


def test_connections_per_host_are_capped(sshd: Sshd) -> None:
    targets = {f"c{i}": model.target(f"c{i}", sshd.target()) for i in range(6)}
    engine = Engine(Settings(ssh_max_sessions=1, max_connections_per_host=2))
    job = make_job([{"command": "sleep 0.2; echo ok"}], concurrency=6)

    async def main() -> tuple[RunResult, int]:
        try:
            r = await engine.run(job, targets, {}, run_id="r", revision="v")
            pool: Any = engine.connectors["ssh"]
            return r, pool._per_host["127.0.0.1"]
        finally:
            await engine.close()

    result, open_connections = asyncio.run(main())
    assert {t.status for t in result.targets.values()} == {"success"}
    assert open_connections == 2


def test_idle_connections_beyond_the_cap_are_closed(sshd: Sshd) -> None:
    targets = {f"i{i}": model.target(f"i{i}", sshd.target()) for i in range(3)}
    engine = Engine(Settings(ssh_max_sessions=1, max_idle_connections=1))

    async def main() -> int:
        try:
            r = await engine.run(make_job([{"command": "sleep 0.2"}], concurrency=3), targets,
                                 {}, run_id="r", revision="v")
            assert r.status == "success"
            pool: Any = engine.connectors["ssh"]
            return int(pool._per_host["127.0.0.1"])
        finally:
            await engine.close()

    assert asyncio.run(main()) == 1


def test_each_target_fails_on_its_own(sshd: Sshd, tmp_path: Path) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    keygen(tmp_path / "stranger")
    port = free_port()
    targets = {
        "good": model.target("good", sshd.target()),
        "unknown-key": model.target("unknown-key", sshd.target(known_hosts=str(empty))),
        "closed": model.target("closed", sshd.target(port=port)),
        "bad-key": model.target("bad-key", sshd.target(key_file=str(tmp_path / "stranger"))),
        "local": model.target("local", {"transport": "local"}),
    }
    result = run(make_job([{"command": "echo fine"}]), targets)
    assert result.status == "failed"
    outcome = {n: (t.status, (t.error or "").split(":")[0], t.stdout)
               for n, t in result.targets.items()}
    assert outcome == {"good": ("success", "", "fine\n"), "local": ("success", "", "fine\n"),
                       "unknown-key": ("failed", "unknown-key", ""),
                       "closed": ("failed", "closed", ""),
                       "bad-key": ("failed", "bad-key", "")}


TRICKY = "it's \"q\" $HOME `id` \\n \\\\ end\nline 2 ünïcödé €\t'\"'\"'\n\n"


def cmdlines() -> list[bytes]:
    """Every process's command line on this machine (the test sshd runs here)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" "))
    return found


def test_env_values_never_appear_in_a_command_line(sshd: Sshd,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "Tok-3141-" + TRICKY
    monkeypatch.setenv("RUNNER_SECRET_TEST_SSH_TOKEN", secret)
    job = make_job([{"command": "sleep 44.3"}], env={
        "TOKEN": "env:RUNNER_SECRET_TEST_SSH_TOKEN", "PLAIN": "plain-2718-value"})
    cancel = Cancel()
    seen: list[list[bytes]] = []
    sleeps: list[int] = []

    def watch() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            found = matching(sshd.proc.pid, "sleep 44.3")  # the step's, by its pids
            lines = cmdlines()
            if found and any(b"sleep 44.3" in line for line in lines):
                seen.append(lines)
                sleeps.extend(found)
                break
            time.sleep(0.02)
        cancel.set("seen")

    watcher = threading.Thread(target=watch)
    watcher.start()
    result = run(job, {"t": model.target("t", sshd.target())}, cancel=cancel)
    watcher.join()
    assert result.status == "cancelled"
    assert seen, "the step never showed up in the process table"
    for needle in ("Tok-3141", "plain-2718-value"):
        leaks = [line for line in seen[0] if needle.encode() in line]
        assert leaks == [], f"{needle} is on a command line: {leaks}"
    assert sleeps and gone(sleeps)


def test_env_values_reach_commands_and_scripts_intact(sshd: Sshd,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "Tok-1618-" + TRICKY
    monkeypatch.setenv("RUNNER_SECRET_TEST_SSH_TOKEN", secret)
    digest = hashlib.sha256(secret.encode()).hexdigest()
    t = one(sshd, [{"command": 'printf %s "$V"'},
                   {"command": 'printf %s "$TOKEN" | sha256sum', "shell": "bash"},
                   {"script": "files/s.sh", "args": ["a"]},
                   {"command": "cat; echo stdin-was-empty"}],
            files={"files/s.sh": FileBlob(b'#!/bin/sh\nprintf "[%s]" "$V" "$1"\n', 0o755)},
            env={"V": TRICKY, "TOKEN": "env:RUNNER_SECRET_TEST_SSH_TOKEN", "EMPTY": ""})
    assert (t.status, t.error) == ("success", None)
    assert t.stdout == f"{TRICKY}{digest}  -\n[{TRICKY}][a]stdin-was-empty\n"


def test_a_commands_own_stdin_follows_the_env(sshd: Sshd) -> None:
    async def main() -> tuple[int, bytes]:
        pool = SshPool(Settings())
        transport = pool.open(model.target("t", sshd.target()), {}, {})
        out, err = Tail(1000), Tail(1000)
        try:
            await transport.connect()
            rc = await transport.run('printf "%s|" "$A"; cat', {"A": "x\ny"}, out, err,
                                     stdin=b"line 1\nline 2")
            await transport.close()
            return rc, bytes(out.buf)
        finally:
            await pool.close()

    assert asyncio.run(main()) == (0, b"x\ny|line 1\nline 2")
