"""One ca-http-v1 session with a remote agent: create it, read its events, stop it.

The bearer the orchestrator presents (a company secret) lives only in this client's default headers:
never in a URL, a log line or an error message. The run's lease token is handed to the remote agent once,
in the session request's ``CA-Lease-Token`` header, so that its tool calls come back fenced through our
tool endpoint or MCP server, as a local agent's do.

The event stream is resumed after a drop (a reset connection, a stream that ends before ``done``, no byte
for ``streamIdleSeconds``, a 5xx) with ``Last-Event-ID``; event ids are increasing integers, and an event
whose id was already seen is skipped, so each one is applied once whatever the server replays. After
``reconnects`` attempts in a row that bring no new event, the run fails (``crash``: retried by policy).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import httpx

from company_agents.adapters.config import HTTP_PROTOCOL, AdapterConfig
from company_agents.adapters.remote.sse import SseParser, SseTooLarge

SESSION_ID_RE = re.compile(r"[A-Za-z0-9._~-]{1,128}")
# The events that end the agent's attempt (as on stdout); a stream that closes after one is over.
TERMINAL = frozenset({"complete", "failed", "handoff"})
CONTROL_TIMEOUT = 10.0  # creating, stopping, sending input: small requests
BACKOFF_BASE, BACKOFF_CAP = 0.2, 5.0
EXCERPT = 200


class RemoteFailure(Exception):
    """The session cannot go on: ``reason`` for the attempt, ``exit_reason`` ``failed`` or ``crash``."""

    def __init__(self, reason: str, exit_reason: str = "failed") -> None:
        super().__init__(reason)
        self.reason = reason
        self.exit_reason = exit_reason


class _Dropped(Exception):
    """The stream broke in a way a reconnect may mend."""


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT else text[:EXCERPT] + "…"


def ssl_context(adapter: AdapterConfig) -> ssl.SSLContext | bool:
    if adapter.ca_path is None and adapter.cert_path is None:
        return True
    context = ssl.create_default_context(cafile=adapter.ca_path)
    if adapter.cert_path is not None:
        context.load_cert_chain(adapter.cert_path, adapter.key_path)
    return context


class RemoteSession:
    def __init__(
        self,
        adapter: AdapterConfig,
        *,
        bearer: str | None,
        note: Callable[[str], None],
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        assert adapter.base_url is not None
        self.adapter = adapter
        self.note = note
        headers = {"User-Agent": f"company-agents ({HTTP_PROTOCOL})"}
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        self.client = httpx.AsyncClient(
            base_url=adapter.base_url.rstrip("/"),
            headers=headers,
            verify=ssl_context(adapter),
            timeout=httpx.Timeout(CONTROL_TIMEOUT),
            transport=transport,
            follow_redirects=False,  # a redirect would carry the bearer to another host
        )
        self.id: str | None = None
        self.last_id = 0
        self.terminal_seen = False
        self.deleted = False

    async def aclose(self) -> None:
        await self.client.aclose()

    # -- create ------------------------------------------------------------------------------

    async def create(self, body: dict[str, Any], lease_token: str) -> str:
        """``POST /v1/sessions``; retried through connection errors (the remote agent answers a repeat
        of the same ``runId`` with the same session)."""
        failures = 0
        while True:
            try:
                reply = await self.client.post(
                    "/v1/sessions", json=body, headers={"CA-Lease-Token": lease_token}
                )
                break
            except httpx.TransportError as exc:
                failures += 1
                if failures > self.adapter.reconnects:
                    raise RemoteFailure(
                        f"could not reach the remote agent at {self.adapter.base_url}: {type(exc).__name__}",
                        "crash",
                    ) from None
                await asyncio.sleep(min(BACKOFF_BASE * 2 ** (failures - 1), BACKOFF_CAP))
        if reply.status_code in (401, 403):
            raise RemoteFailure(f"the remote agent refused our credentials ({reply.status_code})")
        if reply.status_code not in (200, 201):
            raise RemoteFailure(
                f"the remote agent refused the session ({reply.status_code}): {_excerpt(reply.text)}",
                "crash" if reply.status_code >= 500 else "failed",
            )
        try:
            data = reply.json()
        except ValueError:
            data = None
        sid = data.get("id") if isinstance(data, dict) else None
        if not isinstance(sid, str) or not SESSION_ID_RE.fullmatch(sid):
            raise RemoteFailure(
                'the remote agent\'s session reply is malformed (expected {"id": "…"}): '
                + _excerpt(reply.text)
            )
        self.id = sid
        return sid

    # -- events ------------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """The session's events in order, each once; returns at ``done`` (or when the stream closes
        after a terminal event); raises ``RemoteFailure`` for an ``error`` event, a malformed one, a
        refusal, or a stream that does not come back."""
        assert self.id is not None
        failures = 0
        while True:
            try:
                async with contextlib.aclosing(self._stream()) as stream:
                    async for event in stream:
                        failures = 0
                        yield event
                return
            except (httpx.TransportError, _Dropped) as exc:
                why = str(exc) if isinstance(exc, _Dropped) else type(exc).__name__
                failures += 1
                if failures > self.adapter.reconnects:
                    raise RemoteFailure(
                        f"the remote agent's event stream dropped and did not come back after "
                        f"{self.adapter.reconnects} reconnects (last: {why})",
                        "crash",
                    ) from None
                self.note(
                    f"event stream dropped ({why}): reconnecting with Last-Event-ID {self.last_id} "
                    f"({failures}/{self.adapter.reconnects})"
                )
                await asyncio.sleep(min(BACKOFF_BASE * 2 ** (failures - 1), BACKOFF_CAP))

    async def _stream(self) -> AsyncGenerator[dict[str, Any]]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last_id:
            headers["Last-Event-ID"] = str(self.last_id)
        timeout = httpx.Timeout(CONTROL_TIMEOUT, read=self.adapter.stream_idle_seconds)
        async with self.client.stream(
            "GET", f"/v1/sessions/{self.id}/events", headers=headers, timeout=timeout
        ) as reply:
            if reply.status_code in (401, 403):
                raise RemoteFailure(f"the remote agent refused our credentials ({reply.status_code})")
            if reply.status_code == 404:
                raise RemoteFailure(f"the remote agent no longer knows session {self.id} (404)", "crash")
            if reply.status_code >= 500 or reply.status_code == 429:
                raise _Dropped(f"HTTP {reply.status_code}")
            if reply.status_code != 200:
                raise RemoteFailure(f"the remote agent refused the event stream ({reply.status_code})")
            ctype = reply.headers.get("content-type", "")
            if not ctype.startswith("text/event-stream"):
                raise RemoteFailure(f"the remote agent's event stream is not text/event-stream ({ctype!r})")
            parser = SseParser()
            async for line in reply.aiter_lines():
                try:
                    message = parser.feed_line(line)
                except SseTooLarge as exc:
                    raise RemoteFailure(self._malformed(str(exc))) from None
                if message is None:
                    continue
                event = self._decode(message.id, message.event, message.data)
                if event is None:
                    continue
                if event["type"] == "done":
                    return
                if event["type"] == "error":
                    reason = event.get("reason")
                    raise RemoteFailure(
                        f"the remote agent failed: {_excerpt(str(reason))}"
                        if reason
                        else "the remote agent failed (an error event without a reason)"
                    )
                yield event
                if event["type"] in TERMINAL:
                    self.terminal_seen = True
        if not self.terminal_seen:
            raise _Dropped("the stream ended before done")

    def _malformed(self, detail: str) -> str:
        return f"the remote agent sent a malformed event (after event {self.last_id}): {detail}"

    def _decode(self, raw_id: str | None, name: str | None, data: str) -> dict[str, Any] | None:
        """The event, or None for one already applied; ``RemoteFailure`` when it is malformed."""
        if raw_id is None or not (raw_id.isascii() and raw_id.isdigit()) or int(raw_id) < 1:
            raise RemoteFailure(
                self._malformed(f"its id must be an integer ≥ 1, got {_excerpt(str(raw_id))!r}")
            )
        event_id = int(raw_id)
        if event_id <= self.last_id:
            return None  # a replay of what the orchestrator already has
        try:
            event = json.loads(data)
        except json.JSONDecodeError as exc:
            raise RemoteFailure(
                self._malformed(f"id {event_id} is not JSON ({exc.msg}): {_excerpt(data)}")
            ) from None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise RemoteFailure(self._malformed(f"id {event_id} is not an object with a 'type'"))
        if name not in (None, "", "message", event["type"]):
            raise RemoteFailure(self._malformed(f"id {event_id}: event {name!r} but type {event['type']!r}"))
        self.last_id = event_id
        return event

    # -- stop --------------------------------------------------------------------------------

    async def send_input(self, message: dict[str, Any]) -> bool:
        """``POST /v1/sessions/{id}/input``, best effort: whether the remote agent took it."""
        if self.id is None:
            return False
        try:
            reply = await self.client.post(f"/v1/sessions/{self.id}/input", json=message)
        except httpx.HTTPError as exc:
            self.note(f"could not send {message.get('type')} to the remote agent: {type(exc).__name__}")
            return False
        return reply.status_code in (200, 202, 204)

    async def delete(self, reason: str) -> None:
        """``DELETE /v1/sessions/{id}?reason=…``: the remote agent stops and forgets the session. Once."""
        if self.id is None or self.deleted:
            return
        self.deleted = True
        try:
            reply = await self.client.delete(f"/v1/sessions/{self.id}", params={"reason": reason})
        except httpx.HTTPError as exc:
            self.note(f"could not end the remote session: {type(exc).__name__}")
            return
        if reply.status_code not in (200, 202, 204, 404):
            self.note(f"the remote agent answered {reply.status_code} to ending its session")
