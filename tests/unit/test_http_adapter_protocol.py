"""The http adapter's pieces without a network: its config entry checked key by key, the SSE reader,
and the session client's reading of a stream (ids, replays, malformed events, drops) over httpx's mock
transport."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from company_agents.adapters.config import AdapterConfig, load_adapters
from company_agents.adapters.remote.client import RemoteFailure, RemoteSession
from company_agents.adapters.remote.sse import SseMessage, SseParser
from company_agents.errors import ConfigError


def write(tmp_path: Path, adapters: object) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"adapters": adapters}))
    return path


def test_an_http_entry_is_loaded_without_a_binary_and_off_the_gateway(tmp_path: Path) -> None:
    entry = {
        "type": "http",
        "baseUrl": "https://gpu-box.internal:7001",
        "auth": {"type": "bearer", "secret": "PI_API_TOKEN"},
        "reconnects": 2,
        "streamIdleSeconds": 15,
        "timeoutSeconds": 600,
    }
    adapter = load_adapters(write(tmp_path, {"pi": entry}))["pi"]
    assert adapter.is_remote and not adapter.is_cli and not adapter.gateway
    assert (adapter.base_url, adapter.auth_secret, adapter.reconnects) == (
        entry["baseUrl"],
        "PI_API_TOKEN",
        2,
    )
    assert adapter.protocol == "ca-http-v1" and adapter.stream_idle_seconds == 15.0
    mtls = {"type": "http", "baseUrl": "https://h", "auth": {"type": "mtls", "certPath": "c", "keyPath": "k"}}
    assert load_adapters(write(tmp_path, {"m": mtls}))["m"].cert_path == "c"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"type": "http"}, "baseUrl"),
        ({"type": "http", "baseUrl": "ftp://h"}, "baseUrl"),
        ({"type": "http", "baseUrl": "http://user:pw@h"}, "may not hold credentials"),
        ({"type": "http", "baseUrl": "http://h", "protocol": "json-lines"}, "ca-http-v1"),
        ({"type": "http", "baseUrl": "http://h", "auth": {"type": "bearer"}}, "secret"),
        ({"type": "http", "baseUrl": "http://h", "auth": {"type": "mtls", "certPath": "c"}}, "keyPath"),
        ({"type": "http", "baseUrl": "http://h", "auth": {"type": "basic"}}, "auth"),
        ({"type": "http", "baseUrl": "http://h", "reconnects": -1}, "reconnects"),
        ({"type": "http", "baseUrl": "http://h", "streamIdleSeconds": 0}, "streamIdleSeconds"),
        ({"type": "http", "baseUrl": "http://h", "binary": "/bin/sh"}, "does not apply"),
    ],
)
def test_a_bad_http_entry_is_refused_with_the_key(
    tmp_path: Path, entry: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_adapters(write(tmp_path, {"r": entry}))


def test_the_sse_reader_joins_data_lines_and_skips_comments() -> None:
    parser = SseParser()
    lines = [
        ": ping",
        "id: 1",
        "event: progress",
        'data: {"a":',
        "data: 1}",
        "",
        "",
        "retry: 5",
        "id: 2",
        "data: x",
        "",
    ]
    messages = [m for line in lines if (m := parser.feed_line(line)) is not None]
    assert messages == [SseMessage("1", "progress", '{"a":\n1}'), SseMessage("2", None, "x")]


def sse(*events: tuple[Any, str]) -> bytes:
    return "".join(f"id: {i}\ndata: {d}\n\n" for i, d in events).encode()


def session_over(
    replies: list[bytes | int], reconnects: int = 3
) -> tuple[RemoteSession, list[dict[str, str]]]:
    """A session whose event stream answers each connection with the next of ``replies`` (a body, or
    a status code); ``seen`` collects each connection's headers."""
    seen: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(dict(request.headers))
        reply = replies.pop(0)
        if isinstance(reply, int):
            return httpx.Response(reply)
        return httpx.Response(200, content=reply, headers={"content-type": "text/event-stream"})

    adapter = AdapterConfig(name="r", type="http", binary="", base_url="http://remote", reconnects=reconnects)
    session = RemoteSession(
        adapter, bearer="b" * 20, note=lambda _: None, transport=httpx.MockTransport(handler)
    )
    session.id = "s1"
    return session, seen


async def collect(session: RemoteSession) -> list[dict[str, Any]]:
    try:
        return [event async for event in session.events()]
    finally:
        await session.aclose()


def progress(n: int) -> str:
    return json.dumps({"type": "progress", "message": f"p{n}"})


def test_a_dropped_stream_resumes_from_its_last_id_and_skips_replays(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("company_agents.adapters.remote.client.BACKOFF_BASE", 0)
    session, seen = session_over(
        [
            sse((1, progress(1)), (2, progress(2))),  # ends before done: a drop
            503,  # still down
            sse((1, progress(1)), (2, progress(2)), (3, progress(3)), (4, '{"type": "done"}')),  # replays all
        ]
    )
    events = asyncio.run(collect(session))
    assert [e["message"] for e in events] == ["p1", "p2", "p3"]
    assert [h.get("last-event-id") for h in seen] == [None, "2", "2"]
    assert all(h["authorization"] == "Bearer " + "b" * 20 for h in seen)


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (sse((1, progress(1)), (2, "{oops")), "malformed event (after event 1): id 2 is not JSON"),
        (sse(("x", progress(1))), "its id must be an integer"),
        (sse((1, "[1, 2]")), "not an object with a 'type'"),
        (
            sse((1, json.dumps({"type": "error", "reason": "out of GPUs"}))),
            "the remote agent failed: out of GPUs",
        ),
        (401, "refused our credentials (401)"),
        (404, "no longer knows session s1"),
    ],
)
def test_what_ends_a_session_is_a_clear_failure(reply: bytes | int, reason: str) -> None:
    session, _ = session_over([reply])
    with pytest.raises(RemoteFailure, match=reason.replace("(", r"\(").replace(")", r"\)")):
        asyncio.run(collect(session))


def test_a_stream_that_keeps_dropping_fails_after_the_bounded_reconnects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("company_agents.adapters.remote.client.BACKOFF_BASE", 0)
    session, seen = session_over([500, 500, 500], reconnects=2)
    with pytest.raises(RemoteFailure, match="did not come back after 2 reconnects") as failure:
        asyncio.run(collect(session))
    assert failure.value.exit_reason == "crash" and len(seen) == 3


def test_a_stream_closed_after_a_terminal_event_is_over() -> None:
    session, seen = session_over([sse((1, json.dumps({"type": "complete", "output": 1})))])
    assert [e["type"] for e in asyncio.run(collect(session))] == ["complete"] and len(seen) == 1
