"""Hostile peers for attack tests: an SSH server that answers any login with the output it is
given (then junk, without end), and a TCP proxy that rewrites an SSH server's banner line."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import asyncssh


class _Open(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return False  # anyone logs in


@contextmanager
def ssh_server(address: str, output: bytes) -> Iterator[int]:
    """An SSH server on `address` (its port yielded) whose every command prints `output`, then
    64 KiB blocks for as long as the client reads, never exiting."""
    loop = asyncio.new_event_loop()

    async def answer(proc: asyncssh.SSHServerProcess[bytes]) -> None:
        proc.stdout.write(output)
        try:
            while not proc.channel.is_closing():
                proc.stdout.write(b"junk\n" * 13107)
                await proc.stdout.drain()
        except (OSError, asyncssh.Error):
            pass

    async def start() -> asyncssh.SSHAcceptor:
        return await asyncssh.listen(
            address, 0, server_factory=_Open, encoding=None, process_factory=answer,
            server_host_keys=[asyncssh.generate_private_key("ssh-ed25519")])

    server = loop.run_until_complete(start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


@contextmanager
def banner_proxy(address: str, upstream: int, banner: bytes) -> Iterator[int]:
    """A proxy on `address` to 127.0.0.1:`upstream` that replaces the server's first line
    (its SSH version) by `banner`; its port is yielded."""
    listener = socket.create_server((address, 0))

    def pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                s.close()

    def accept() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", upstream))
            first = b""
            while b"\n" not in first and (more := server.recv(1)):
                first += more
            client.sendall(banner + b"\r\n")
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=pump, args=(a, b), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
