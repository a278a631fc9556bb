"""A reference remote agent speaking ca-http-v1 (docs/agent-protocol.md §ca-http-v1), for the http adapter.

Run it as ``REMOTE_AGENT_TOKEN=… python -m company_agents.examples.remote_agent --port 7001`` and point an
adapter at it (``{"type": "http", "baseUrl": "http://127.0.0.1:7001", "auth": {"type": "bearer",
"secret": "REMOTE_AGENT_TOKEN"}}``). Without ``REMOTE_AGENT_TOKEN`` it accepts any caller.

Its work is small and checkable: it reads the task it is sent, reports ``progress``, a ``cost`` for
``demo-remote-model`` (a pretend model: token counts are the sizes of what it read and wrote), and
``complete`` with ``{"summary", "words", "session"}``. Leading ``key: value`` lines of the task's body steer
it, so that a test (or a person trying the protocol) can watch each path:

- ``steps: N`` progress events between the first and the cost (default 2); ``delay: S`` seconds between
  events (default 0.05);
- ``drop-after: K`` the first connection to the event stream closes after its K-th event (the client
  must resume with ``Last-Event-ID``); ``replay: all`` a resumed stream starts again from event 1 (the
  client must skip what it has);
- ``malformed-at: K`` event K is not JSON; ``error: REASON`` the session ends with an ``error`` event;
  ``fail: REASON`` it reports ``failed``; ``hang: yes`` it waits after its first progress until it is
  told to stop (``shutdown`` input or ``DELETE``);
- ``tool: progress`` it also reports progress through the orchestrator's tool endpoint with the run's
  lease token (``POST {tools.url}/tools/report_progress``), as a remote agent's tool calls come back.

The sessions it served are kept in memory (``RemoteAgent.sessions``): the tests look at what arrived
(the bearer, the lease token, inputs, the reason it was deleted).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import json
import os
import re
import secrets
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

HEARTBEAT_SECONDS = 10.0
DIRECTIVE_RE = re.compile(r"^([a-z][a-z-]*):\s*(.*)$")


def directives(body: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in body.splitlines():
        match = DIRECTIVE_RE.match(line.strip())
        if match is None:
            break
        found[match.group(1)] = match.group(2).strip()
    return found


@dataclass
class Session:
    id: str
    run_id: str
    request: dict[str, Any]
    lease_token: str
    # Each event as sent: (id, data as text); the data is JSON except where a test asked for a broken one.
    events: list[tuple[int, str]] = field(default_factory=list)
    finished: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    connects: list[str | None] = field(default_factory=list)  # the Last-Event-ID of each connection
    deleted: str | None = None  # the reason given with DELETE
    worker: asyncio.Task[None] | None = None

    def emit(self, event: dict[str, Any] | str) -> None:
        data = event if isinstance(event, str) else json.dumps(event)
        self.events.append((len(self.events) + 1, data))
        self.changed.set()

    def finish(self) -> None:
        if not self.finished:
            self.emit({"type": "done"})
            self.finished = True


class RemoteAgent:
    def __init__(self, token: str | None) -> None:
        self.token = token
        self.sessions: dict[str, Session] = {}
        self.by_run: dict[str, str] = {}
        self.refused = 0

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/healthz", self.healthz, methods=["GET"]),
                Route("/v1/sessions", self.create, methods=["POST"]),
                Route("/v1/sessions/{sid}/events", self.events, methods=["GET"]),
                Route("/v1/sessions/{sid}/input", self.input, methods=["POST"]),
                Route("/v1/sessions/{sid}", self.delete, methods=["DELETE"]),
            ]
        )

    def _authorized(self, request: Request) -> bool:
        if self.token is None:
            return True
        given = request.headers.get("authorization", "")
        ok = hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode())
        if not ok:
            self.refused += 1
        return ok

    def _session(self, request: Request) -> Session | Response:
        if not self._authorized(request):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        session = self.sessions.get(request.path_params["sid"])
        if session is None:
            return JSONResponse({"error": "no such session"}, status_code=404)
        return session

    async def healthz(self, _: Request) -> Response:
        return JSONResponse({"ok": True})

    async def create(self, request: Request) -> Response:
        if not self._authorized(request):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        lease_token = request.headers.get("ca-lease-token")
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not lease_token or not isinstance(body, dict) or body.get("protocol") != "ca-http-v1":
            return JSONResponse({"error": "expected a ca-http-v1 session request"}, status_code=400)
        run_id = str(body.get("runId"))
        if (existing := self.by_run.get(run_id)) is not None:  # a retried POST: the same session
            return JSONResponse({"id": existing}, status_code=200)
        session = Session(id=secrets.token_hex(8), run_id=run_id, request=body, lease_token=lease_token)
        self.sessions[session.id] = session
        self.by_run[run_id] = session.id
        session.worker = asyncio.create_task(work(session))
        return JSONResponse({"id": session.id}, status_code=201)

    async def events(self, request: Request) -> Response:
        session = self._session(request)
        if isinstance(session, Response):
            return session
        last = request.headers.get("last-event-id")
        session.connects.append(last)
        steer = directives(str(session.request.get("task", {}).get("body", "")))
        first = len(session.connects) == 1
        start = 0 if (steer.get("replay") == "all" or not last or not last.isdecimal()) else int(last)
        drop_after = int(steer["drop-after"]) if first and steer.get("drop-after", "").isdecimal() else None

        async def stream() -> AsyncIterator[bytes]:
            index, sent = start, 0
            while True:
                while index < len(session.events):
                    event_id, data = session.events[index]
                    index += 1
                    yield f"id: {event_id}\ndata: {data}\n\n".encode()
                    sent += 1
                    if drop_after is not None and sent >= drop_after:
                        return  # the connection drops mid-run
                if session.finished:
                    return
                session.changed.clear()
                try:
                    await asyncio.wait_for(session.changed.wait(), timeout=HEARTBEAT_SECONDS)
                except TimeoutError:
                    yield b": ping\n\n"

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    async def input(self, request: Request) -> Response:
        session = self._session(request)
        if isinstance(session, Response):
            return session
        message = await request.json()
        session.inputs.append(message)
        if isinstance(message, dict) and message.get("type") == "shutdown":
            session.stop.set()
        return Response(status_code=204)

    async def delete(self, request: Request) -> Response:
        session = self._session(request)
        if isinstance(session, Response):
            return session
        session.deleted = request.query_params.get("reason", "")
        session.stop.set()
        if session.worker is not None:
            session.worker.cancel()
        session.finish()
        return Response(status_code=204)


def _report_progress_over_tools(session: Session, message: str) -> None:
    tools = session.request.get("tools") or {}
    request = urllib.request.Request(
        f"{tools['url'].rstrip('/')}/tools/report_progress",
        data=json.dumps({"fencingToken": session.request["fencingToken"], "message": message}).encode(),
        headers={"Authorization": f"Bearer {session.lease_token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        reply.read()


async def work(session: Session) -> None:
    task = session.request.get("task") or {}
    body = str(task.get("body", ""))
    steer = directives(body)
    delay = float(steer.get("delay", "0.05"))
    steps = int(steer.get("steps", "2"))

    async def pause() -> bool:
        """Wait between events; True when the agent was told to stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(session.stop.wait(), timeout=delay)
        return session.stop.is_set()

    malformed_at = int(steer.get("malformed-at", "0") or 0)

    def emit(event: dict[str, Any]) -> None:
        session.emit("{not json" if len(session.events) + 1 == malformed_at else event)

    try:
        emit({"type": "progress", "message": f"read the task: {task.get('title', '')}", "percent": 10})
        if steer.get("tool") == "progress":
            await asyncio.to_thread(_report_progress_over_tools, session, "reported over the tool endpoint")
        if steer.get("hang") == "yes":
            await session.stop.wait()
        for step in range(steps):
            if await pause():
                return
            emit(
                {
                    "type": "progress",
                    "message": f"step {step + 1}",
                    "percent": 20 + 60 * step // max(steps, 1),
                }
            )
        if await pause():
            return
        if "error" in steer:
            session.emit({"type": "error", "reason": steer["error"]})
            return
        words = len(body.split())
        emit(
            {
                "type": "cost",
                "id": f"{session.id}:1",
                "model": "demo-remote-model",
                "inputTokens": max(1, len(body) // 4),
                "outputTokens": 10,
            }
        )
        if "fail" in steer:
            emit({"type": "failed", "reason": steer["fail"]})
            return
        if await pause():
            return
        emit(
            {
                "type": "complete",
                "output": {"summary": f"{words} words in the brief", "words": words, "session": session.id},
                "reasoning": "counted the words",
            }
        )
    finally:
        session.finish()


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="A reference ca-http-v1 remote agent.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7001)
    args = parser.parse_args(argv)
    agent = RemoteAgent(os.environ.get("REMOTE_AGENT_TOKEN") or None)
    uvicorn.run(agent.app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
