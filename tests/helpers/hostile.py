"""Hostile peers for attack tests: an SSH server that answers any login with the output it is
given (then junk, without end), and a TCP proxy that rewrites an SSH server's banner line."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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


@contextmanager
def drip_server(head: bytes, drip: bytes, every: float, budget: float) -> Iterator[int]:
    """An HTTP server on 127.0.0.1 (its port yielded) that answers each request with `head`,
    then `drip` one byte every `every` seconds, over and over, for `budget` seconds."""
    listener = socket.create_server(("127.0.0.1", 0))

    def answer(client: socket.socket) -> None:
        with client:
            try:
                got = b""
                while b"\r\n\r\n" not in got and (more := client.recv(65536)):
                    got += more
                client.sendall(head)
                end, at = time.monotonic() + budget, 0
                while time.monotonic() < end:
                    client.sendall(drip[at:at + 1])
                    at = (at + 1) % len(drip)
                    time.sleep(every)  # the hostile peer's pace, not a test's wait
            except OSError:
                pass

    def accept() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(client,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()


@contextmanager
def reflect_server() -> Iterator[int]:
    """An HTTP server on 127.0.0.1 (its port yielded) that redirects `/` to a URL holding the
    Authorization header it got, and answers that URL 503: the token in the final URL; and
    answers /long/N with N bytes and then that header 500 times."""

    class Reflect(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            token = str(self.headers.get("Authorization"))
            body = b""
            if self.path == "/":
                self.send_response(302)
                self.send_header("Location", f"/back?t={token}")
            elif self.path.startswith("/long/"):  # /long/N: N bytes, then the token, 500 times
                self.send_response(200)
                body = b"x" * int(self.path[6:]) + token.encode() * 500
            else:
                self.send_response(503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Reflect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def disconnect_server(address: str, reason: str) -> Iterator[int]:
    """An SSH server on `address` (its port yielded) that sends its version, then a
    DISCONNECT message whose description is `reason`."""
    listener = socket.create_server((address, 0))
    text = reason.encode()
    payload = (bytes([1]) + struct.pack(">II", 2, len(text)) + text + struct.pack(">I", 0))
    pad = 8 - (5 + len(payload)) % 8
    pad += 8 if pad < 4 else 0
    packet = struct.pack(">IB", 1 + len(payload) + pad, pad) + payload + b"\0" * pad

    def accept() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with client, contextlib.suppress(OSError):
                client.sendall(b"SSH-2.0-bye\r\n" + packet)
                client.recv(65536)

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
