"""What keeps another web page from driving the dashboard: the ``Host`` check (DNS rebinding), a CSRF
token on every state-changing request, and headers that forbid inline script and framing.

The dashboard trusts the local user (it binds to loopback), so these are its only guards: a page on
another site can make the browser send requests to ``127.0.0.1:3101``, but it cannot read the token
from our pages, and a rebound name arrives with a ``Host`` we do not serve.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Forms are small: a body past this is refused before it is parsed for the token.
MAX_FORM_BYTES = 256 * 1024

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


def new_csrf_token() -> str:
    """The per-process token: every page carries it, and it dies with the process."""
    return secrets.token_urlsafe(32)


def allowed_hosts(bind_host: str, port: int) -> frozenset[str]:
    names = {"127.0.0.1", "localhost", bind_host}
    return frozenset(f"{name}:{port}" for name in names)


async def _plain(send: Send, status: int, text: str) -> None:
    body = text.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*headers, *HEADERS]})
    await send({"type": "http.response.body", "body": body})


class DashboardGuard:
    """Pure ASGI (no body buffering for GETs or the SSE stream): Host check, CSRF check, headers."""

    def __init__(self, app: ASGIApp, *, hosts: Iterable[str], csrf_token: str) -> None:
        self.app = app
        self.hosts = frozenset(h.lower() for h in hosts)
        self.token = csrf_token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if headers.get("host", "").lower() not in self.hosts:
            await _plain(send, 400, "unknown Host: open the dashboard at the address `up` printed")
            return
        if scope["method"] not in SAFE_METHODS:
            receive, ok = await self._check_csrf(headers, receive)
            if not ok:
                await _plain(send, 403, "missing or wrong CSRF token: reload the page and try again")
                return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)

    async def _check_csrf(self, headers: dict[str, str], receive: Receive) -> tuple[Receive, bool]:
        sent = headers.get(CSRF_HEADER)
        if sent is not None:
            return receive, hmac.compare_digest(sent.encode(), self.token.encode())
        # A plain form post: read the body once, find the hidden field, and replay it to the app.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return receive, False
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_FORM_BYTES:
                return receive, False
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return receive, False
        fields = parse_qs(body.decode("utf-8", "replace"))
        values = fields.get(CSRF_FIELD, [])
        ok = len(values) == 1 and hmac.compare_digest(values[0].encode(), self.token.encode())
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay, ok
