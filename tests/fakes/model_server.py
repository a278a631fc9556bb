"""A scripted model server the tests own: Anthropic Messages, OpenAI Responses and Gemini, streaming.

Stdlib only (``ThreadingHTTPServer`` on a free loopback port), so any test, benchmark or gateway test
can start one. Every request is logged (path, headers, body, monotonic time). Each reply is decided from
the request's content, never from a turn counter, because the CLIs also send side requests:

- a request whose last turn carries the result of one of *our* tool calls (the id we minted) gets the
  final text (only the last turn: a resumed session's history holds the results of earlier runs);
- a request offering a tool whose name contains ``script.tool`` gets a call to it with ``script.tool_input``;
- anything else gets ``script.other_text``.

Usage numbers are fixed per reply (``script.call_usage`` for the tool-call reply, ``script.final_usage``
for the final one) so a test can check the metering exactly. ``fail(status, count)`` makes the next
``count`` model calls fail with a provider-shaped error body (``{key}`` in its message
quotes the key the client sent, as OpenAI's 401 does); ``script.delay_seconds`` delays each reply.
``hold()`` makes every streamed reply send all but its last event and wait for ``release()``
(``holding`` is set meanwhile), so a test can see what reached the client before the reply ended.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CALL_ID_PREFIX = "fakecall"


@dataclass(frozen=True)
class TurnUsage:
    """Tokens of one model reply, quoted the Anthropic way: ``input`` is the uncached input."""

    input: int
    output: int
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0


@dataclass
class Script:
    tool: str = "mark_complete"
    tool_input: dict[str, Any] = field(default_factory=lambda: {"output": "hello from the fake model"})
    final_text: str = "FINAL: the task is complete."
    other_text: str = "ok"
    call_usage: TurnUsage = TurnUsage(1000, 50, cache_read=300, cache_write=200, reasoning=7)
    final_usage: TurnUsage = TurnUsage(1200, 20, cache_read=500, reasoning=7)
    delay_seconds: float = 0.0
    # The model's reply to a request with no tool to call: "text" or a tool call for any offered tool
    # whose name contains this (e.g. "Bash" to make Claude run a shell command), with ``tool_input``.
    model_version: str = "fake-gemini"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float  # time.monotonic()


@dataclass
class _Failure:
    status: int
    remaining: int
    message: str


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A CLI killed mid-request resets its connection: that is the test's doing, not an error.
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class ModelServer:
    """Start with ``with ModelServer() as server:``; ``server.url`` is the base URL to hand the CLIs."""

    def __init__(self, script: Script | None = None, host: str = "127.0.0.1") -> None:
        self.script = script or Script()
        self._host = host
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._failure: _Failure | None = None
        self._ids = itertools.count(1)
        self.served: list[TurnUsage] = []  # the usage of every model reply sent, in order
        self.holding = threading.Event()  # a streamed reply is waiting for release() before its end
        self._hold = False
        self._released = threading.Event()
        self._server = _Server((host, 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        port = self._server.server_address[1]
        return f"http://{self._host}:{port}"

    def __enter__(self) -> ModelServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def hold(self) -> None:
        self._hold = True
        self._released.clear()

    def release(self) -> None:
        self._hold = False
        self._released.set()

    def fail(self, status: int, count: int, message: str = "fake injected error") -> None:
        """The next ``count`` model calls answer ``status`` with the provider's error shape."""
        with self._lock:
            self._failure = _Failure(status, count, message)

    def model_requests(self) -> list[Request]:
        """The requests to a model endpoint (not the connectivity checks)."""
        with self._lock:
            return [r for r in self.requests if r.method == "POST"]

    def next_id(self) -> str:
        with self._lock:
            return f"{CALL_ID_PREFIX}_{next(self._ids):04d}"

    def _take_failure(self) -> _Failure | None:
        with self._lock:
            failure = self._failure
            if failure is None or failure.remaining <= 0:
                return None
            failure.remaining -= 1
            return failure

    def _log(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:  # quiet: the request log is the record
                pass

            def setup(self) -> None:
                super().setup()
                # As providers' servers do: a reply's header and body segments are not held back by
                # Nagle's algorithm waiting for the client's delayed ACK (40 ms a reply on Linux).
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_HEAD(self) -> None:
                server._log(Request("HEAD", self.path, dict(self.headers), None, time.monotonic()))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                server._log(Request("GET", self.path, dict(self.headers), None, time.monotonic()))
                self._json(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except json.JSONDecodeError:
                    body = raw.decode(errors="replace")
                server._log(Request("POST", self.path, dict(self.headers), body, time.monotonic()))
                path = self.path.split("?", 1)[0]
                if path.endswith("/messages"):
                    provider = "anthropic"
                elif path.endswith("/responses"):
                    provider = "openai"
                elif ":streamGenerateContent" in path or ":generateContent" in path:
                    provider = "gemini"
                else:
                    self._json(404, {"error": {"message": f"no such endpoint {path}"}})
                    return
                if server.script.delay_seconds:
                    time.sleep(server.script.delay_seconds)
                if (failure := server._take_failure()) is not None:
                    # "{key}" in the message quotes the key the client sent, as some providers do.
                    key = (
                        self.headers.get("x-api-key")
                        or self.headers.get("x-goog-api-key")
                        or (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                    )
                    quoted = _Failure(failure.status, 0, failure.message.replace("{key}", key))
                    self._json(failure.status, _error_body(provider, quoted))
                    return
                body = body if isinstance(body, dict) else {}
                if provider == "anthropic":
                    self._sse(_anthropic_events(server, body))
                elif provider == "openai":
                    self._sse(_openai_events(server, body))
                elif ":streamGenerateContent" in path:
                    self._sse([(None, _gemini_reply(server, body))])
                else:  # the router's non-streaming call: a JSON answer
                    self._json(200, _gemini_reply(server, body, router=True))

            def _json(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _sse(self, events: list[tuple[str | None, dict[str, Any]]]) -> None:
                chunks = []
                for name, data in events:
                    head = f"event: {name}\n" if name else ""
                    chunks.append(f"{head}data: {json.dumps(data)}\n\n")
                payload = "".join(chunks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if not server._hold:
                    self.wfile.write(payload)
                    return
                last = len(chunks[-1].encode())
                self.wfile.write(payload[:-last])
                self.wfile.flush()
                server.holding.set()
                server._released.wait()
                server.holding.clear()
                self.wfile.write(payload[-last:])

        return Handler


def _error_body(provider: str, failure: _Failure) -> dict[str, Any]:
    if provider == "anthropic":
        kind = "authentication_error" if failure.status == 401 else "api_error"
        return {"type": "error", "error": {"type": kind, "message": failure.message}}
    if provider == "openai":
        code = "invalid_api_key" if failure.status == 401 else "server_error"
        return {"error": {"message": failure.message, "type": code, "code": code}}
    status = "UNAUTHENTICATED" if failure.status == 401 else "INTERNAL"
    return {"error": {"code": failure.status, "message": failure.message, "status": status}}


# -- Anthropic Messages -----------------------------------------------------------------------------


def _anthropic_decide(server: ModelServer, body: dict[str, Any]) -> tuple[str, str | None]:
    """("final", None), ("call", tool name) or ("other", None) for one Messages request."""
    for message in (body.get("messages") or [])[-1:]:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for block in content:
            if (
                isinstance(block, dict)
                and block.get("type") == "tool_result"
                and str(block.get("tool_use_id", "")).startswith(CALL_ID_PREFIX)
            ):
                return "final", None
    for tool in body.get("tools") or []:
        name = tool.get("name") if isinstance(tool, dict) else None
        if isinstance(name, str) and server.script.tool in name:
            return "call", name
    return "other", None


def _anthropic_events(server: ModelServer, body: dict[str, Any]) -> list[tuple[str | None, dict[str, Any]]]:
    script = server.script
    decision, tool = _anthropic_decide(server, body)
    usage = script.final_usage if decision == "final" else script.call_usage
    server.served.append(usage)
    model = str(body.get("model") or "claude-fake")
    events: list[tuple[str | None, dict[str, Any]]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": f"msg_{server.next_id()}",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": usage.input,
                        "output_tokens": 1,
                        "cache_read_input_tokens": usage.cache_read,
                        "cache_creation_input_tokens": usage.cache_write,
                    },
                },
            },
        )
    ]
    text = script.final_text if decision == "final" else script.other_text
    if decision == "call":
        text = "Calling the tool."
    events += [
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ]
    if decision == "call":
        events += [
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 1,
                    "content_block": {"type": "tool_use", "id": server.next_id(), "name": tool, "input": {}},
                },
            ),
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 1,
                    "delta": {"type": "input_json_delta", "partial_json": json.dumps(script.tool_input)},
                },
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        ]
    events += [
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": "tool_use" if decision == "call" else "end_turn",
                    "stop_sequence": None,
                },
                "usage": {"output_tokens": usage.output},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return events


# -- OpenAI Responses -------------------------------------------------------------------------------


def _openai_decide(server: ModelServer, body: dict[str, Any]) -> tuple[str, tuple[str | None, str] | None]:
    for item in reversed(body.get("input") or []):
        if not isinstance(item, dict):
            continue
        if item.get("role") == "user":
            break  # the last turn starts here
        if item.get("type") == "function_call_output" and str(item.get("call_id", "")).startswith(
            CALL_ID_PREFIX
        ):
            return "final", None
    for tool in body.get("tools") or []:
        if not isinstance(tool, dict):
            continue
        if tool.get("type") == "namespace":
            for inner in tool.get("tools") or []:
                name = inner.get("name") if isinstance(inner, dict) else None
                if isinstance(name, str) and server.script.tool in name:
                    return "call", (str(tool.get("name")), name)
        elif isinstance(tool.get("name"), str) and server.script.tool in tool["name"]:
            return "call", (None, tool["name"])
    return "other", None


def _openai_events(server: ModelServer, body: dict[str, Any]) -> list[tuple[str | None, dict[str, Any]]]:
    script = server.script
    decision, tool = _openai_decide(server, body)
    usage = script.final_usage if decision == "final" else script.call_usage
    server.served.append(usage)
    response_id = f"resp_{server.next_id()}"
    base = {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "model": body.get("model"),
    }
    seq = itertools.count()
    events: list[tuple[str | None, dict[str, Any]]] = []

    def emit(kind: str, **data: Any) -> None:
        events.append((kind, {"type": kind, "sequence_number": next(seq), **data}))

    emit("response.created", response={**base, "status": "in_progress", "output": []})
    emit("response.in_progress", response={**base, "status": "in_progress", "output": []})
    if decision == "call" and tool is not None:
        namespace, name = tool
        item: dict[str, Any] = {
            "type": "function_call",
            "id": f"fc_{server.next_id()}",
            "call_id": server.next_id(),
            "name": name,
            "arguments": json.dumps(script.tool_input),
            "status": "completed",
        }
        if namespace:
            item["namespace"] = namespace
        emit(
            "response.output_item.added",
            output_index=0,
            item={**item, "arguments": "", "status": "in_progress"},
        )
        emit(
            "response.function_call_arguments.delta",
            item_id=item["id"],
            output_index=0,
            delta=item["arguments"],
        )
        emit(
            "response.function_call_arguments.done",
            item_id=item["id"],
            output_index=0,
            arguments=item["arguments"],
        )
    else:
        text = script.final_text if decision == "final" else script.other_text
        msg_id = f"msg_{server.next_id()}"
        part = {"type": "output_text", "text": text, "annotations": []}
        item = {
            "type": "message",
            "id": msg_id,
            "role": "assistant",
            "status": "completed",
            "content": [part],
        }
        emit(
            "response.output_item.added",
            output_index=0,
            item={**item, "status": "in_progress", "content": []},
        )
        emit(
            "response.content_part.added",
            item_id=msg_id,
            output_index=0,
            content_index=0,
            part={**part, "text": ""},
        )
        emit("response.output_text.delta", item_id=msg_id, output_index=0, content_index=0, delta=text)
        emit("response.output_text.done", item_id=msg_id, output_index=0, content_index=0, text=text)
        emit("response.content_part.done", item_id=msg_id, output_index=0, content_index=0, part=part)
    emit("response.output_item.done", output_index=0, item=item)
    total_input = usage.input + usage.cache_read
    emit(
        "response.completed",
        response={
            **base,
            "status": "completed",
            "output": [item],
            "usage": {
                "input_tokens": total_input,
                "input_tokens_details": {"cached_tokens": usage.cache_read},
                "output_tokens": usage.output,
                "output_tokens_details": {"reasoning_tokens": usage.reasoning},
                "total_tokens": total_input + usage.output,
            },
        },
    )
    return events


# -- Gemini -----------------------------------------------------------------------------------------


def _gemini_reply(server: ModelServer, body: dict[str, Any], *, router: bool = False) -> dict[str, Any]:
    script = server.script
    if router:
        text = json.dumps({"reasoning": "fake", "model_choice": "flash"})
        parts: list[dict[str, Any]] = [{"text": text}]
        usage = TurnUsage(10, 5)
    else:
        decision, tool = "other", ""
        for content in (body.get("contents") or [])[-1:]:
            for part in content.get("parts") or [] if isinstance(content, dict) else []:
                if isinstance(part, dict) and "functionResponse" in part:
                    name = str(part["functionResponse"].get("name", ""))
                    if script.tool in name:
                        decision = "final"
        if decision != "final":
            for group in body.get("tools") or []:
                for decl in (group.get("functionDeclarations") or []) if isinstance(group, dict) else []:
                    declared = decl.get("name") if isinstance(decl, dict) else None
                    if isinstance(declared, str) and script.tool in declared:
                        decision, tool = "call", declared
        usage = script.final_usage if decision == "final" else script.call_usage
        if decision == "call":
            parts = [{"functionCall": {"name": tool, "args": script.tool_input}}]
        else:
            parts = [{"text": script.final_text if decision == "final" else script.other_text}]
    server.served.append(usage)
    prompt = usage.input + usage.cache_read
    return {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {
            "promptTokenCount": prompt,
            "candidatesTokenCount": usage.output,
            "cachedContentTokenCount": usage.cache_read,
            "totalTokenCount": prompt + usage.output,
        },
        "modelVersion": script.model_version,
    }
