"""The gateway's HTTP face: authenticate, apply the policy, reserve, forward, stream back, meter.

One catch-all ASGI route, so a provider path we do not know (a model list, a token count) still
reaches the provider, authenticated, and only model calls are reserved and metered. The answer is
passed on chunk by chunk as httpx yields it (``aiter_raw``: no decoding, no buffering); the usage
reader sees each chunk on its way.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from uuid import UUID

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from company_agents.costs.ledger import Amounts, NewCost
from company_agents.db.database import Database
from company_agents.gateway import auth, reserve
from company_agents.gateway.formats import UsageReader, WireFormat, formats
from company_agents.gateway.policy import Policies
from company_agents.gateway.routes import Routes, RunRoute
from company_agents.settings import Settings

log = logging.getLogger(__name__)

# Not forwarded either way (RFC 9110 §7.6.1), plus what we set ourselves.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "accept-encoding",
}
# (status, the provider's own error type) of each refusal, per wire format: budget and loop refusals
# use a status the CLIs do not retry (Gemini CLI retries 429 for minutes).
REFUSALS: dict[str, dict[str, tuple[int, str]]] = {
    "anthropic": {
        "auth": (401, "authentication_error"),
        "model": (403, "permission_error"),
        "rate": (429, "rate_limit_error"),
        "budget": (400, "invalid_request_error"),
        "loop": (400, "invalid_request_error"),
        "upstream": (502, "api_error"),
        "size": (413, "request_too_large"),
    },
    "openai": {
        "auth": (401, "invalid_request_error"),
        "model": (403, "invalid_request_error"),
        "rate": (429, "rate_limit_exceeded"),
        "budget": (429, "insufficient_quota"),
        "loop": (400, "invalid_request_error"),
        "upstream": (502, "server_error"),
        "size": (413, "invalid_request_error"),
    },
    "gemini": {
        "auth": (401, "UNAUTHENTICATED"),
        "model": (403, "PERMISSION_DENIED"),
        "rate": (429, "RESOURCE_EXHAUSTED"),
        "budget": (403, "PERMISSION_DENIED"),
        "loop": (403, "PERMISSION_DENIED"),
        "upstream": (502, "UNAVAILABLE"),
        "size": (413, "INVALID_ARGUMENT"),
    },
}


def redact_key(body: bytes, key: str) -> bytes:
    """``body`` without ``key`` (nor any 8-character-or-longer part a provider may quote of it, such as
    OpenAI's ``sk-abc…wxyz``: the key's start and end)."""
    secret = key.encode()
    body = body.replace(secret, b"[redacted]")
    if len(secret) >= 16:
        body = body.replace(secret[:8], b"[redacted]").replace(secret[-8:], b"[redacted]")
    return body


class Gateway:
    """The gateway of one orchestrator: its runs, their policies, what is in flight, one HTTP client."""

    def __init__(self, settings: Settings, db: Database, routes: Routes | None = None) -> None:
        self.settings = settings
        self.db = db
        self.routes = routes or Routes()
        self.policies = Policies(settings.gateway_rate_per_minute, settings.gateway_loop_repeats)
        self.in_flight = reserve.InFlight()
        self.rates = reserve.RateCache()
        self.formats: dict[str, WireFormat] = formats()
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            # No read timeout: a model may think for minutes between chunks; the run's timeout bounds it.
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(None, connect=30.0),
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    def app(self) -> Starlette:
        methods = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"]
        return Starlette(routes=[Route("/{path:path}", self.handle, methods=methods)])

    # -- one call ------------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        path_token, name, rest = auth.split_path(request.url.path)
        fmt = self.formats.get(name)
        if fmt is None:
            return JSONResponse(
                {
                    "error": {
                        "message": f"no wire format {name!r}: use /anthropic, /openai "
                        "or /gemini (docs/gateway.md)"
                    }
                },
                status_code=404,
            )
        token = path_token or auth.token_from(request.headers, request.query_params)
        route = self.routes.find(token) if token else None
        if route is None:
            return self._refuse(fmt, "auth", "not a gateway token of a running run", "unknown_token")
        body = await self._body(request)
        if body is None:
            limit = self.settings.gateway_max_body_bytes
            return self._refuse(fmt, "size", f"the request is larger than {limit} bytes", "too_large")
        metered = request.method == "POST" and fmt.metered(rest)
        parsed: dict[str, Any] = {}
        if metered:
            try:
                loaded = json.loads(body) if body else {}
            except ValueError:
                loaded = {}
            parsed = loaded if isinstance(loaded, dict) else {}
        model = fmt.model(rest, parsed) if metered else None
        if metered:
            refused = self._policy(fmt, route, model, body)
            if refused is not None:
                return refused
        worst: Decimal | None = None
        scopes: list[UUID] = []
        for attempt in range(2):
            async with route.lock:
                rows, worst = await self._read(route, fmt, model if metered else None, parsed, len(body))
            if rows is None:
                return self._refuse(
                    fmt, "auth", "the run this token belongs to no longer holds its lease", "run_ended"
                )
            if worst is None:
                break
            scopes, refusal = self.in_flight.admit(rows, worst)
            if refusal is None:
                break
            if attempt == 0 and route.pending:
                # The run's answered calls still count at their worst case: meter them, read again.
                await route.drain()
                continue
            reason = (
                f"budget: this request's worst case ({worst} USD) does not fit the {refusal.scope} "
                f"budget ({refusal.spent} of {refusal.cap} USD spent, {refusal.committed} committed)"
            )
            # Stopped once the refusal is sent, so the agent reads it (and the CLI reports it).
            return self._refuse(
                fmt, "budget", reason, "budget", then=functools.partial(route.stop, "hard", reason)
            )
        return await self._forward(request, fmt, route, rest, body, model, worst, scopes, path_token is None)

    async def _body(self, request: Request) -> bytes | None:
        """The request's body, None past the size limit (read no further than it)."""
        limit = self.settings.gateway_max_body_bytes
        if int(request.headers.get("content-length") or 0) > limit:
            return None
        parts, size = [], 0
        async for part in request.stream():
            size += len(part)
            if size > limit:
                return None
            parts.append(part)
        return b"".join(parts)

    async def _read(
        self, route: RunRoute, fmt: WireFormat, model: str | None, parsed: dict[str, Any], size: int
    ) -> tuple[list[dict[str, Any]] | None, Decimal | None]:
        """The run's budget scopes (None: its lease is gone) and the call's worst case (None: not a
        priced model call)."""
        worst = None
        async with self.db.engine.connect() as conn:
            async with conn.begin() as tx:
                rows = await reserve.scopes(conn, route.ident, route.fencing_token)
                if rows is not None and model is not None:
                    found = await self.rates.get(conn, route.ident.company_id, model, fmt.provider)
                    if found is not None:
                        cap = fmt.max_tokens(parsed) or self.settings.gateway_default_max_tokens
                        worst = found.worst_case(size, cap)
                await tx.rollback()  # a read: the zero-cost check lowers nothing
        return rows, worst

    def _policy(self, fmt: WireFormat, route: RunRoute, model: str | None, body: bytes) -> Response | None:
        if route.allowed_models is not None and model not in route.allowed_models:
            allowed = ", ".join(sorted(route.allowed_models)) or "none"
            return self._refuse(
                fmt,
                "model",
                f"model {model!r} is not allowed for this agent ({allowed})",
                "model_not_allowed",
            )
        policy = self.policies.of(route.ident.run_id)
        if policy.rate_exceeded():
            return self._refuse(
                fmt,
                "rate",
                f"more than {policy.rate_per_minute} model calls a minute in this run",
                "rate_limit",
            )
        if policy.loops(body):
            reason = f"loop detected: the same request {policy.loop_repeats} times in a row"
            return self._refuse(
                fmt, "loop", reason, "loop_detected", then=lambda: route.stop("loop_detected", reason)
            )
        return None

    def _refuse(
        self, fmt: WireFormat, what: str, message: str, reason: str, then: Callable[[], None] | None = None
    ) -> Response:
        status, kind = REFUSALS[fmt.name][what]
        after = BackgroundTask(then) if then is not None else None
        return JSONResponse(fmt.error(status, kind, message, reason), status_code=status, background=after)

    async def _forward(
        self,
        request: Request,
        fmt: WireFormat,
        route: RunRoute,
        rest: str,
        body: bytes,
        model: str | None,
        worst: Decimal | None,
        scopes: list[UUID],
        keyed: bool,
    ) -> Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        query = dict(request.query_params)
        key = route.keys.get(fmt.name)
        if keyed:
            # The run's token goes no further; the real key is added here, on the way out.
            for name in ("authorization", *auth.KEY_HEADERS):
                headers.pop(name, None)
            query.pop("key", None)
            if key is not None:
                fmt.put_key(headers, key)
        headers["accept-encoding"] = "identity"  # the usage is read from the bytes as they pass
        upstream = route.upstreams.get(fmt.name, fmt.default_upstream).rstrip("/") + rest
        outgoing = self.client.build_request(
            request.method, upstream, headers=headers, params=query, content=body
        )
        try:
            answer = await self.client.send(outgoing, stream=True)
        except httpx.HTTPError as exc:
            if worst is not None:
                self.in_flight.release(scopes, worst)
            return self._refuse(
                fmt, "upstream", f"the provider could not be reached ({type(exc).__name__})", "upstream"
            )
        metered = worst is not None or (request.method == "POST" and fmt.metered(rest) and model is not None)
        streaming = "text/event-stream" in answer.headers.get("content-type", "") or ":stream" in rest
        reader = fmt.reader(streaming) if metered and answer.status_code < 400 else None
        out_headers = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
        if answer.status_code >= 400 and key is not None:
            # A provider's refusal may quote the key it was sent (OpenAI's 401 does): the agent must
            # never read it. Error bodies are small; they are read whole and the key taken out.
            try:
                raw = await answer.aread()
            finally:
                await answer.aclose()
                if worst is not None:
                    self.in_flight.release(scopes, worst)
            return Response(redact_key(raw, key), status_code=answer.status_code, headers=out_headers)

        async def chunks() -> Any:
            try:
                async for chunk in answer.aiter_raw():
                    if reader is not None:
                        reader.feed(chunk)
                    yield chunk
            finally:
                await answer.aclose()
                # A task of its own: a client that hung up cancels this generator, not the metering.
                task = asyncio.get_running_loop().create_task(
                    self._meter(fmt, route, rest, reader, model, worst, scopes)
                )
                route.pending.add(task)
                task.add_done_callback(route.pending.discard)

        return StreamingResponse(chunks(), status_code=answer.status_code, headers=out_headers)

    async def _meter(
        self,
        fmt: WireFormat,
        route: RunRoute,
        rest: str,
        reader: UsageReader | None,
        model: str | None,
        worst: Decimal | None,
        scopes: list[UUID],
    ) -> None:
        try:
            if reader is None:
                return
            usage, answered = reader.result()
            if usage is None:
                return
            details: dict[str, Any] = {"gateway": True, "path": rest}
            if worst is not None:
                details["worstCaseUsd"] = str(worst)
            cost = NewCost(
                kind="llm",
                usage=usage,
                amounts=Amounts.unpriced_usage(),
                model=answered or model,
                provider=fmt.provider,
                billing=route.billing(fmt.name),
                idempotency_key=f"gateway:{route.ident.run_id}:{uuid.uuid4()}",
                details=details,
            )
            async with route.lock:
                await route.record(cost)
        except Exception:  # the call was answered; a failed write is logged, never the client's problem
            log.exception("gateway: metering a call of run %s failed", route.ident.run_id)
        finally:
            if worst is not None:
                self.in_flight.release(scopes, worst)
