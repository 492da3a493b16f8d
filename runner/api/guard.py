"""What `runner api` answers before anything else: the Host allow-list (a Host that is not
one of the API's names gets 400, WebSocket handshakes too: a web page whose DNS name is
rebound to the API's address must not read it) and the security headers of every response.
`serve` wraps the app in `guard`.
"""

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

# Every response: no inline script or style, nothing framed, sniffed or sent as a referrer.
SECURITY_HEADERS = (
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self'; "
     b"img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
     b"form-action 'self'; frame-ancestors 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def guard(app: ASGIApp, hosts: tuple[str, ...]) -> ASGIApp:
    """`app` answering only a Host of `hosts` (any port), 400 to others before anything
    runs; SECURITY_HEADERS on every response. A raw ASGI wrapper: a request costs a header
    scan and a closure."""
    allowed = frozenset(h.lower().encode() for h in hosts)

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await app(scope, receive, send)
            return
        host = next((v for k, v in scope["headers"] if k == b"host"), b"")
        name = host.lower()
        name = name[1:name.find(b"]")] if name.startswith(b"[") else name.partition(b":")[0]
        if name not in allowed:
            await _refuse_host(scope, send, host)
        elif scope["type"] == "websocket":
            await app(scope, receive, send)
        else:
            async def secured(message: Any) -> None:
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message.get("headers", ()),
                                                      *SECURITY_HEADERS]}
                await send(message)

            await app(scope, receive, secured)
    return serve


async def _refuse_host(scope: Scope, send: Send, host: bytes) -> None:
    body = (f"Host {host.decode('latin-1')[:100]!r} is not one this API answers to; add the "
            "name to RUNNER_API_ALLOWED_HOSTS\n").encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"),
               (b"content-length", b"%d" % len(body)), *SECURITY_HEADERS]
    kind = "http" if scope["type"] == "http" else "websocket.http"
    if kind == "http" or "websocket.http.response" in scope.get("extensions", {}):
        await send({"type": f"{kind}.response.start", "status": 400, "headers": headers})
        await send({"type": f"{kind}.response.body", "body": body})
    else:  # a server without the denial response extension answers 403
        await send({"type": "websocket.close", "code": 1008})
