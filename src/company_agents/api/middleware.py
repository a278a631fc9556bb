"""The request id: one per request, taken from ``X-Request-Id`` when the client sent a sane one,
echoed in the response's ``X-Request-Id``, put in every error body and in the request log line.

The log line names the caller by token id (``deps.require`` sets it); the Authorization header is
never read here, so a token cannot reach the log.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("company_agents.api.access")

HEADER = "X-Request-Id"
# A client's id is echoed (and logged) only when it is short and plain: no header or log injection.
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def new_request_id() -> str:
    return f"req_{uuid.uuid4().hex[:20]}"


def request_id_of(scope: Scope | Any) -> str | None:
    """The id of the request whose ASGI scope (or Starlette ``Request``) this is; None in an app
    without ``RequestId`` (the tool port)."""
    state = scope.get("state") if isinstance(scope, dict) else getattr(scope, "scope", {}).get("state")
    value = (state or {}).get("request_id")
    return str(value) if value else None


class RequestId:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope["headers"]).get(HEADER.lower().encode(), b"").decode("latin-1")
        request_id = sent if _CLIENT_ID.match(sent) else new_request_id()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                headers.append((HEADER.lower().encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.info(
                "%s %s %s",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "action": "api_request",
                    "requestId": request_id,
                    "tokenId": state.get("token_id"),
                    "status": status,
                    "ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
