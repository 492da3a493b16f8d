"""Real receivers of notifications on loopback: an HTTP server (webhooks, Slack) that can
fail its first requests, and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from tests.servers import free_port


@dataclass
class Http:
    """What an HTTP receiver got: the bodies it accepted (JSON), by path, and how many
    requests it refused with 500 (it refuses the first `fail` ones)."""

    port: int
    fail: int = 0
    accepted: list[tuple[str, Any]] = field(default_factory=list)
    refused: int = 0

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@contextmanager
def http_receiver(fail: int = 0) -> Iterator[Http]:
    """An HTTP server on a free loopback port, in a thread, until the block ends."""
    got = Http(free_port(), fail)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                refuse = got.refused < got.fail
                if refuse:
                    got.refused += 1
                else:
                    got.accepted.append((self.path, json.loads(body)))
            self.send_response(500 if refuse else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", got.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Smtp:
    """What an SMTP receiver got: (from, to, message text) of each mail."""

    port: int
    mails: list[tuple[str, list[str], str]] = field(default_factory=list)


@contextmanager
def smtp_receiver() -> Iterator[Smtp]:
    """aiosmtpd on a free loopback port until the block ends (any login is accepted)."""
    got = Smtp(free_port())

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            got.mails.append((envelope.mail_from, list(envelope.rcpt_tos),
                              envelope.content.decode("utf-8", "replace")))
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=got.port,
                            auth_require_tls=False, auth_exclude_mechanism=["CRAM-MD5"],
                            authenticator=lambda *_: AuthResult(success=True))
    controller.start()
    try:
        yield got
    finally:
        controller.stop()
