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
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], deadline: float = 10.0,
              host: str = "127.0.0.1") -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        with socket.socket() as s:
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.02)  # polling with a deadline
    raise TimeoutError(f"nothing listens on {host}:{port} after {deadline}s")


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


def start_sshd(directory: Path, max_startups: int = 200, ca: Path | None = None,
               address: str = "127.0.0.1", extra: str = "") -> Sshd:
    """An sshd on `address`; with `ca` (a private key) its host key also comes with a host
    certificate signed by that CA for the principal 127.0.0.1; `extra`: more sshd_config
    lines."""
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
    host_line = f"[{address}]:{port} {key_type} {key_data}"
    (directory / "known_hosts").write_text(host_line + "\n")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation directory
    (directory / "sshd_config").write_text(f"""\
Port {port}
ListenAddress {address}
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
{cert}{extra}""")
    with open(directory / "sshd.log", "wb") as log:
        proc = subprocess.Popen([binary, "-D", "-e", "-f", str(directory / "sshd_config")],
                                stdout=subprocess.DEVNULL, stderr=log)
    wait_port(port, proc, host=address)
    return Sshd(directory, port, getpass.getuser(), directory / "client_ed25519",
                directory / "known_hosts", host_line, proc)


@dataclass
class Redis:
    url: str
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def start_redis(directory: Path, port: int | None = None, persist: bool = False,
                args: tuple[str, ...] = ()) -> Redis:
    """A redis-server keeping nothing on disk (with `persist`: an append-only file in
    `directory`, so a restart keeps the data); `port`: the port of one stopped before (an
    outage: stop it, start it again on the same port); `args`: more options."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(binary):
        raise RuntimeError("redis-server not found: install redis-server (.ci/run does)")
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "yes" if persist else "no", "--dir", str(directory),
                             *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    return Redis(f"redis://127.0.0.1:{port}/0", proc)


def redis_port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


@dataclass
class Sentinels:
    """A master, its replica and three Sentinels (quorum 2) watching them as `mymaster`,
    failing over about a second after the master stops answering."""

    servers: list[Redis]
    sentinels: list[subprocess.Popen[bytes]]
    ports: list[int]
    url: str  # REDIS_URL naming the Sentinels

    def sentinel(self, port: int) -> Any:
        import redis

        return redis.Redis(port=port, decode_responses=True, socket_timeout=5)

    def master_port(self) -> int:
        """The master's port as the first Sentinel that answers names it."""
        import redis

        for port in self.ports:
            with contextlib.suppress(redis.RedisError):
                return int(self.sentinel(port).sentinel_get_master_addr_by_name("mymaster")[1])
        raise RuntimeError("no Sentinel answers")

    def ready(self) -> bool:
        """Every Sentinel sees the master and a replica up and knows the two other Sentinels:
        a failover can be agreed."""
        for port in self.ports:
            s = self.sentinel(port)
            master = s.sentinel_master("mymaster")
            replicas = [r for r in s.sentinel_slaves("mymaster")
                        if not (r["is_sdown"] or r["is_odown"] or r["is_disconnected"])
                        and r["master-link-status"] == "ok"]  # synced, replicating
            if master["is_sdown"] or not replicas or len(s.sentinel_sentinels("mymaster")) < 2:
                return False
        return True

    def kill(self, port: int) -> None:
        """kill -9 of the server on `port`."""
        for server in self.servers:
            if redis_port(server.url) == port:
                server.proc.kill()
                server.proc.wait(10)

    def stop(self) -> None:
        for proc in self.sentinels + [s.proc for s in self.servers]:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)


def start_sentinel(directory: Path) -> Sentinels:
    """A master and a replica (start_redis) watched by three Sentinels (redis-server
    --sentinel), all on free loopback ports; returns when the Sentinels know the replica (in
    sync) and each other."""
    fast = ("--repl-diskless-sync-delay", "0")  # a replica syncs at once, not after 5 s
    master = start_redis(directory / "master", args=fast)
    replica = start_redis(directory / "replica", args=(
        *fast, "--replicaof", "127.0.0.1", str(redis_port(master.url))))
    sentinels, ports = [], []
    for i in range(3):
        port = free_port()
        conf = directory / f"sentinel-{i}.conf"  # Sentinel rewrites it: its own file
        conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
                        f"sentinel monitor mymaster 127.0.0.1 {redis_port(master.url)} 2\n"
                        "sentinel down-after-milliseconds mymaster 1000\n"
                        "sentinel failover-timeout mymaster 3000\n")
        proc = subprocess.Popen([shutil.which("redis-server") or "/usr/bin/redis-server",
                                 str(conf), "--sentinel"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(port, proc)
        sentinels.append(proc)
        ports.append(port)
    url = ";".join(f"sentinel://127.0.0.1:{p}" for p in ports) + "/0?master_name=mymaster"
    found = Sentinels([master, replica], sentinels, ports, url)
    end = time.monotonic() + 60
    while not found.ready():
        if time.monotonic() > end:
            found.stop()
            raise TimeoutError("the Sentinels did not find the replica and each other in 60s")
        time.sleep(0.2)  # polling with a deadline
    return found


@contextlib.contextmanager
def runner_up(repo: Path, log: Path, *args: str, env: dict[str, str] | None = None,
              cwd: Path | None = None, command: tuple[str, ...] = (sys.executable, "-m", "runner"),
              api_port: int | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """`runner up --repo REPO ARGS` with its API on a free loopback port, on the embedded
    default unless `env` sets REDIS_URL; stopped with SIGTERM on the way out (killed if it
    has not exited within 60 s, which fails the test). `command`: how runner is started (the
    console script, to start it in a configuration repository as users do); `api_port`: the
    API's port (a free one when None)."""
    if env is None:
        env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    with open(log, "wb") as out:
        up = subprocess.Popen([*command, "up", "--repo", str(repo), *args,
                               "--api-bind", f"127.0.0.1:{api_port or free_port()}"], env=env,
                              stdout=out,
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
