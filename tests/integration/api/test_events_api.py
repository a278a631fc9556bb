"""The SSE route over real HTTP: Last-Event-ID reconnects during a burst lose and repeat nothing."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from company_agents import api_tokens, companies, tasks
from company_agents.api.app import create_app
from company_agents.db.database import Database
from company_agents.settings import Settings
from tests.integration.queue_helpers import ThreadedServer, engine, free_port, make_world

__all__ = ["engine"]


@pytest.fixture
def api_url(db_url: str, tmp_path: Path) -> Iterator[str]:
    settings = Settings(home=tmp_path / "home", database_url=db_url)
    db = Database(settings=settings, url=db_url)
    port = free_port()
    server = ThreadedServer(
        uvicorn.Config(create_app(db, settings), host="127.0.0.1", port=port, log_level="warning")
    )

    async def serve() -> None:
        try:
            await server.serve()
        finally:
            await db.dispose()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "API server did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=15)


async def frames(response: httpx.Response) -> AsyncIterator[dict[str, str]]:
    """SSE frames as field dicts (comments kept under ``:``)."""
    current: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if current:
                yield current
            current = {}
            continue
        name, _, value = line.partition(":")
        current[name or ":"] = value[1:] if value.startswith(" ") else value


async def _token(engine: AsyncEngine, *scopes: str, company_id: UUID | None = None) -> str:
    async with engine.begin() as conn:
        _, token = await api_tokens.create_token(conn, name="sse", scopes=list(scopes), company_id=company_id)
    return token


async def test_reconnecting_with_last_event_id_during_a_burst_gets_each_event_once_in_order(
    engine: AsyncEngine, api_url: str
) -> None:
    world = await make_world(engine)
    token = await _token(engine, "read")
    url = f"{api_url}/v1/companies/{world.slug}/events"
    total, writers = 500, 4
    received: list[dict[str, Any]] = []
    retry_seen: list[str] = []

    async def write(w: int) -> None:
        for i in range(total // writers):
            async with engine.begin() as conn:
                await tasks.create_task(conn, company="acme", title=f"w{w}-{i}", team="Engineering")

    writing: asyncio.Future[Any] | None = None
    last: str | None = None
    connections = 0

    def created() -> int:
        return sum(d["type"] == "task.created" for d in received)

    async with httpx.AsyncClient(timeout=60) as client:
        while created() < total:
            headers = {"Authorization": f"Bearer {token}"}
            if last is not None:
                headers["Last-Event-ID"] = last
            connections += 1
            async with client.stream("GET", url, headers=headers) as response:
                assert response.status_code == 200, await response.aread()
                assert response.headers["content-type"].startswith("text/event-stream")
                if writing is None:  # the stream starts at the newest event: write only once it is open
                    writing = asyncio.gather(*(write(w) for w in range(writers)))
                async for frame in frames(response):
                    if "retry" in frame:
                        retry_seen.append(frame["retry"])
                    if "id" not in frame:
                        continue
                    data = json.loads(frame["data"])
                    assert data["id"] == frame["id"] and data["type"] == frame["event"]
                    received.append(data)
                    last = frame["id"]
                    if len(received) % 97 == 0 or created() == total:
                        break  # the client drops mid-burst and reconnects
        assert writing is not None
        await writing
    ids = [int(d["id"]) for d in received]
    assert len(ids) == len(set(ids)), "every event exactly once"
    # Events written just before the stream opened may come first; the burst is all there, in order.
    ids = [int(d["id"]) for d in received if d["type"] == "task.created"]
    assert len(ids) == total
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT id FROM audit_events WHERE company_id = :c AND action = 'task.created'"
                " ORDER BY txid, id"
            ),
            {"c": world.company_id},
        )
        assert ids == [int(r[0]) for r in rows]
    assert connections >= 5 and retry_seen and set(retry_seen) == {"3000"}


async def test_tokens_scopes_companies_and_cursors_are_checked(engine: AsyncEngine, api_url: str) -> None:
    world = await make_world(engine)
    async with engine.begin() as conn:
        other = await companies.create_company(conn, name="Other", team_names=["Ops"])
    scoped = await _token(engine, "read", f"company:{other['id']}", company_id=other["id"])
    token = await _token(engine, "read")
    url = f"{api_url}/v1/companies/{world.slug}/events"
    async with httpx.AsyncClient(timeout=30) as client:
        assert (await client.get(url)).status_code == 401
        response = await client.get(url, headers={"Authorization": f"Bearer {scoped}"})
        assert response.status_code == 404, response.text
        for bad in ["abc", "1" * 30]:
            response = await client.get(
                url, headers={"Authorization": f"Bearer {token}", "Last-Event-ID": bad}
            )
            assert response.status_code in (400, 422) and response.json()["error"]["code"] == "invalid_input"
        # An event id of another company's feed is not a cursor here.
        async with engine.connect() as conn:
            foreign = (
                await conn.execute(
                    text("SELECT max(id) FROM audit_events WHERE company_id = :c"), {"c": other["id"]}
                )
            ).scalar_one()
        response = await client.get(
            url, headers={"Authorization": f"Bearer {token}", "Last-Event-ID": str(foreign)}
        )
        assert response.status_code in (400, 422)
        spec = (
            await client.get(f"{api_url}/v1/openapi.json", headers={"Authorization": f"Bearer {token}"})
        ).json()
        assert not any(path.endswith("/events") for path in spec["paths"])


async def test_a_client_that_stops_reading_is_dropped_not_buffered(
    engine: AsyncEngine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from company_agents import audit
    from company_agents.api.routes import events as events_route

    monkeypatch.setattr(events_route, "SEND_TIMEOUT_SECONDS", 1.0)
    settings = Settings(home=tmp_path / "home2", database_url=db_url)
    db = Database(settings=settings, url=db_url)
    app = create_app(db, settings)
    port = free_port()
    server = ThreadedServer(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    while not server.started:
        await asyncio.sleep(0.01)
    world = await make_world(engine)
    token = await _token(engine, "read")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        sock.connect(("127.0.0.1", port))
        sock.sendall(
            f"GET /v1/companies/{world.slug}/events HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {token}\r\n\r\n".encode()
        )
        head = sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 200"), head
        # Far more than any socket buffer holds; the client reads none of it.
        big = "x" * 50_000
        for i in range(20):
            async with engine.begin() as conn:
                for j in range(10):
                    await audit.record(
                        conn, actor="user:local", action="task.noted", subject_type="task",
                        subject_id=f"{i}-{j}", company_id=world.company_id, payload={"blob": big},
                    )  # fmt: skip
        # The server gives up on the stalled client: its stream ends and its subscription goes.
        hub = None
        while hub is None or hub.subscribers:
            await asyncio.sleep(0.1)
            hub = getattr(app.state, "event_hub", None)
        sock.settimeout(60)
        received = len(head)
        while chunk := sock.recv(1 << 16):
            received += len(chunk)
        assert received < 20 * 10 * 50_000, "the stream ended before all events were sent"
    finally:
        sock.close()
        server.should_exit = True
        thread.join(timeout=15)
        await db.dispose()
