"""What keeps another web page from driving the dashboard: the ``Host`` check (DNS rebinding), a CSRF
token on every state-changing request, and headers that forbid inline script and framing.

It binds to loopback, but loopback is not only the user: every agent can reach it (docs/security.md,
"the network is open"). So a request must also carry the access cookie, which a browser gets once
from the link ``up`` prints (``/?token=…``, a per-process secret an agent cannot read in the ``user`` and
``sandbox`` modes). A page on another site can make the browser send requests to ``127.0.0.1:3101``,
but it cannot read the CSRF token from our pages, and a rebound name arrives with a ``Host`` we do not
serve.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ACCESS_COOKIE = "ca_dashboard"
# The private-network mode's login page (login.py): the one page served without the cookie.
LOGIN_PATH = "/login"
ACCESS_PARAM = "token"
# Paths served without the cookie: the vendored and own static files, which hold nothing of a company.
PUBLIC_PREFIX = "/static/"
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


def new_token() -> str:
    """A per-process secret (the CSRF token, the access token): it dies with the process."""
    return secrets.token_urlsafe(32)


def allowed_hosts(bind_host: str, port: int) -> frozenset[str]:
    names = {"127.0.0.1", "localhost", bind_host}
    return frozenset(f"{name}:{port}" for name in names)


async def _plain(send: Send, status: int, text: str) -> None:
    body = text.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*headers, *HEADERS]})
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Send, location: str) -> None:
    headers = [(b"location", location.encode()), (b"content-length", b"0")]
    await send({"type": "http.response.start", "status": 303, "headers": [*headers, *HEADERS]})
    await send({"type": "http.response.body", "body": b""})


def access_cookie(value: str) -> str:
    """The ``Set-Cookie`` value that lets a browser in (the link's grant, the login's session)."""
    return f"{ACCESS_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict"


class DashboardGuard:
    """Pure ASGI (no body buffering for GETs or the SSE stream): Host check, CSRF check, headers."""

    def __init__(
        self, app: ASGIApp, *, hosts: Iterable[str], csrf_token: str, access_token: str, login: bool = False
    ) -> None:
        self.app = app
        self.login = login
        self.hosts = frozenset(h.lower() for h in hosts)
        self.token = csrf_token
        self.access = access_token

    def _has_access(self, headers: dict[str, str]) -> bool:
        cookie: SimpleCookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header is no access, not an error
            return False
        morsel = cookie.get(ACCESS_COOKIE)
        return morsel is not None and hmac.compare_digest(morsel.value.encode(), self.access.encode())

    async def _grant(self, scope: Scope, send: Send) -> bool:
        """``?token=`` right: set the cookie and redirect to the same URL without it (so the token
        leaves the address bar and the history). Wrong or absent: False."""
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        sent = query.pop(ACCESS_PARAM, [])
        if len(sent) != 1 or not hmac.compare_digest(sent[0].encode(), self.access.encode()):
            return False
        rest = urlencode({k: v[-1] for k, v in query.items()})
        location = scope["path"] + (f"?{rest}" if rest else "")
        cookie = access_cookie(self.access)
        headers = [
            (b"location", location.encode()),
            (b"set-cookie", cookie.encode()),
            (b"content-length", b"0"),
        ]
        await send({"type": "http.response.start", "status": 303, "headers": [*headers, *HEADERS]})
        await send({"type": "http.response.body", "body": b""})
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if headers.get("host", "").lower() not in self.hosts:
            await _plain(send, 400, "unknown Host: open the dashboard at the address `up` printed")
            return
        if not scope["path"].startswith(PUBLIC_PREFIX) and not self._has_access(headers):
            if scope["method"] in SAFE_METHODS and await self._grant(scope, send):
                return
            if not self.login:
                await _plain(send, 401, "open the dashboard through the link `company-agents up` printed")
                return
            if scope["path"] != LOGIN_PATH:
                if scope["method"] in SAFE_METHODS:
                    await _redirect(send, LOGIN_PATH)
                else:
                    await _plain(send, 401, "log in to the dashboard first")
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
