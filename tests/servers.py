"""Real servers for the tests, each on a free loopback port with throw-away keys.

Nothing here is skipped when a server is missing: a missing binary fails the test that needs it.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], deadline: float = 10.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)  # polling with a deadline
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {deadline}s")


def keygen(path: Path) -> str:
    """A fresh ed25519 key pair at path (+ .pub); returns the public key line."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "runner-test",
                    "-f", str(path)], check=True)
    return (path.with_suffix(".pub") if path.suffix else Path(f"{path}.pub")).read_text().strip()


@dataclass
class Sshd:
    """An OpenSSH sshd on 127.0.0.1:port that lets the current user in with `client_key`."""

    dir: Path
    port: int
    user: str
    client_key: Path
    known_hosts: Path
    host_key_line: str
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)

    def target(self, **extra: object) -> dict[str, object]:
        """A targets.d entry reaching this sshd."""
        return {"transport": "ssh", "host": "127.0.0.1", "port": self.port, "user": self.user,
                "key_file": str(self.client_key), "known_hosts": str(self.known_hosts), **extra}


def start_sshd(directory: Path, max_startups: int = 200, ca: Path | None = None) -> Sshd:
    """An sshd; with `ca` (a private key) its host key also comes with a host certificate
    signed by that CA for the principal 127.0.0.1."""
    binary = shutil.which("sshd") or "/usr/sbin/sshd"
    if not os.path.exists(binary):
        raise RuntimeError("sshd not found: install openssh-server (.ci/run does)")
    directory.mkdir(parents=True, exist_ok=True)
    host_pub = keygen(directory / "host_ed25519")
    client_pub = keygen(directory / "client_ed25519")
    (directory / "authorized_keys").write_text(client_pub + "\n")
    os.chmod(directory / "authorized_keys", 0o600)
    cert = ""
    if ca is not None:
        subprocess.run(["ssh-keygen", "-q", "-s", str(ca), "-h", "-I", "runner-test-host",
                        "-n", "127.0.0.1", str(directory / "host_ed25519.pub")], check=True)
        cert = f"HostCertificate {directory}/host_ed25519-cert.pub\n"
    port = free_port()
    key_type, key_data = host_pub.split()[:2]
    host_line = f"[127.0.0.1]:{port} {key_type} {key_data}"
    (directory / "known_hosts").write_text(host_line + "\n")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation directory
    (directory / "sshd_config").write_text(f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {directory}/host_ed25519
PidFile {directory}/sshd.pid
AuthorizedKeysFile {directory}/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin yes
StrictModes no
UsePAM no
MaxStartups {max_startups}
MaxSessions 10
LogLevel ERROR
{cert}""")
    with open(directory / "sshd.log", "wb") as log:
        proc = subprocess.Popen([binary, "-D", "-e", "-f", str(directory / "sshd_config")],
                                stdout=subprocess.DEVNULL, stderr=log)
    wait_port(port, proc)
    return Sshd(directory, port, getpass.getuser(), directory / "client_ed25519",
                directory / "known_hosts", host_line, proc)


@dataclass
class Redis:
    url: str
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def start_redis(directory: Path, port: int | None = None, persist: bool = False) -> Redis:
    """A redis-server keeping nothing on disk (with `persist`: an append-only file in
    `directory`, so a restart keeps the data); `port`: the port of one stopped before (an
    outage: stop it, start it again on the same port)."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(binary):
        raise RuntimeError("redis-server not found: install redis-server (.ci/run does)")
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "yes" if persist else "no", "--dir", str(directory)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    return Redis(f"redis://127.0.0.1:{port}/0", proc)


@contextlib.contextmanager
def runner_up(repo: Path, log: Path, *args: str, env: dict[str, str] | None = None,
              cwd: Path | None = None, command: tuple[str, ...] = (sys.executable, "-m", "runner")
              ) -> Iterator[subprocess.Popen[bytes]]:
    """`runner up --repo REPO ARGS` with its API on a free loopback port, on the embedded
    default unless `env` sets REDIS_URL; stopped with SIGTERM on the way out (killed if it
    has not exited within 60 s, which fails the test). `command`: how runner is started (the
    console script, to start it in a configuration repository as users do)."""
    if env is None:
        env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    with open(log, "wb") as out:
        up = subprocess.Popen([*command, "up", "--repo", str(repo), *args,
                               "--api-bind", f"127.0.0.1:{free_port()}"], env=env, stdout=out,
                              stderr=out, start_new_session=True, cwd=cwd)
        try:
            yield up
        finally:
            up.send_signal(signal.SIGTERM)
            try:
                up.wait(60)
            finally:
                if up.poll() is None:
                    os.killpg(up.pid, signal.SIGKILL)
