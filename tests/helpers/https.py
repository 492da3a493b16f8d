"""A loopback HTTPS server with a throw-away CA, for the http step's tests.

Routes: /health (200, "ok"), /status/N (status N), /loop (302 to itself), /to-health (302 to
/health), /echo (200, the request's headers and body), /big (200, 5000 bytes). Every request
is recorded (path, headers) in `seen`.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
          signer: ec.EllipticCurvePrivateKey, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True).add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False).add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return builder.sign(signer, hashes.SHA256())


def make_ca(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate it signed (localhost, 127.0.0.1): (ca.pem, server.pem,
    server.key) in `directory`."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _cert("runner test CA", ca_key, x509.Name([x509.NameAttribute(
        NameOID.COMMON_NAME, "runner test CA")]), ca_key, True)
    server = _cert("localhost", key, ca.subject, ca_key, False)
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@dataclass
class HttpsServer:
    """The server, its port, its CA file, and the requests it has seen."""

    server: ThreadingHTTPServer
    port: int
    ca: Path
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_https(directory: Path) -> HttpsServer:
    """An HTTPS server on a free loopback port, serving from a thread of this process."""
    ca, cert, key = make_ca(directory)
    seen: list[tuple[str, dict[str, str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self) -> None:
            seen.append((self.path, dict(self.headers.items())))
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, extra, data = 200, {}, b"ok\n"
            if self.path.startswith("/status/"):
                status, data = int(self.path[8:]), b"down\n"
            elif self.path in ("/loop", "/to-health"):
                status = 302
                extra = {"Location": "/loop" if self.path == "/loop" else "/health"}
            elif self.path == "/big":
                data = b"x" * 5000
            elif self.path == "/echo":
                data = "".join(f"{k}: {v}\n" for k, v in self.headers.items()).encode() + body
            self.send_response(status)
            for k, v in extra.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return HttpsServer(server, server.server_address[1], ca, seen)
