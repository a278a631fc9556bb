"""Webhooks against a real local receiver: signatures, retries, 4xx, redirects, URLs, two workers."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from company_agents import agents, tasks
from company_agents.db.database import Database
from company_agents.errors import InvalidInput
from company_agents.master_key import MasterKey
from company_agents.settings import Settings
from company_agents.webhooks import endpoints
from company_agents.webhooks.worker import Backoff, deliver_due, judge
from tests.integration.queue_helpers import World, engine, make_world

__all__ = ["engine"]

KEY = MasterKey(key=bytes(range(32)), source="test")
NOW = Backoff(base_seconds=0, cap_seconds=0)  # retries due at once: backoff has its own unit test


@dataclass
class Receiver:
    url: str
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with state.lock:
                state.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                status, extra = state.script.pop(0) if state.script else (200, {})
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("content-length", "0")
            self.end_headers()

        do_GET = do_POST

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Standard Webhooks verification, written from the spec rather than from our signing module."""
    assert secret.startswith("whsec_")
    key = base64.b64decode(secret[len("whsec_") :])
    content = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.{body.decode()}".encode()
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    sent = [s.split(",", 1)[1] for s in headers["webhook-signature"].split(" ") if s.startswith("v1,")]
    return any(hmac.compare_digest(expected, s) for s in sent)


@pytest.fixture
def db(db_url: str, tmp_path: Path) -> Database:
    # Each test disposes of it (its pool belongs to the test's event loop).
    return Database(settings=Settings(home=tmp_path / "home", database_url=db_url), url=db_url)


async def _endpoint(
    engine: AsyncEngine, world: World, url: str, events: list[str]
) -> tuple[dict[str, Any], str]:
    async with engine.begin() as conn:
        return await endpoints.add_endpoint(conn, KEY, company_id=world.company_id, url=url, events=events)


async def _drain(db: Database) -> int:
    attempts = 0
    while sent := await deliver_due(db, KEY, backoff=NOW):
        attempts += sent
    return attempts


async def _deliveries(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT * FROM webhook_deliveries ORDER BY id"))
        return [dict(r) for r in rows.mappings()]


async def test_500_twice_then_200_is_delivered_once_after_three_signed_attempts(
    engine: AsyncEngine, db: Database, receiver: Receiver
) -> None:
    world = await make_world(engine)
    _, secret = await _endpoint(engine, world, receiver.url, ["task.*", "approval.*", "budget.*"])
    receiver.script = [(500, {}), (500, {})]
    async with engine.begin() as conn:
        task = await tasks.create_task(conn, company="acme", title="Ship it", team="Engineering")
        # Not subscribed: agent events never reach this endpoint.
        await agents.hire_agent(conn, company="acme", name="cy", role="worker", adapter="process")
    try:
        assert await _drain(db) == 3
    finally:
        await db.dispose()
    (delivery,) = await _deliveries(engine)
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == ("succeeded", 3, 200)
    assert delivery["delivered_at"] is not None
    assert len(receiver.requests) == 3
    ids = {headers["webhook-id"] for _, headers, _ in receiver.requests}
    assert len(ids) == 1, "a retry is the same message"
    for _, headers, body in receiver.requests:
        assert verify(secret, headers, body)
        assert not verify("whsec_" + base64.b64encode(b"x" * 24).decode(), headers, body)
        message = json.loads(body)
        assert message["type"] == "task.created"
        assert message["data"]["subject"] == {"type": "task", "id": str(task["id"])}
    assert secret not in json.dumps(await _deliveries(engine), default=str)


async def test_a_400_is_not_retried_but_429_is(engine: AsyncEngine, db: Database, receiver: Receiver) -> None:
    world = await make_world(engine)
    await _endpoint(engine, world, receiver.url, ["task.created"])
    receiver.script = [(400, {})]
    async with engine.begin() as conn:
        await tasks.create_task(conn, company="acme", title="Bad", team="Engineering")
    try:
        assert await _drain(db) == 1
        receiver.script = [(429, {}), (408, {})]
        async with engine.begin() as conn:
            await tasks.create_task(conn, company="acme", title="Busy", team="Engineering")
        assert await _drain(db) == 3
    finally:
        await db.dispose()
    first, second = await _deliveries(engine)
    assert (first["status"], first["attempts"], first["last_status_code"]) == ("failed", 1, 400)
    assert (second["status"], second["attempts"]) == ("succeeded", 3)
    assert len(receiver.requests) == 4


async def test_a_redirect_is_not_followed(engine: AsyncEngine, db: Database, receiver: Receiver) -> None:
    world = await make_world(engine)
    await _endpoint(engine, world, receiver.url, ["task.*"])
    receiver.script = [(307, {"location": receiver.url.replace("/hook", "/elsewhere")})]
    async with engine.begin() as conn:
        await tasks.create_task(conn, company="acme", title="Moved", team="Engineering")
    try:
        assert await _drain(db) == 1
    finally:
        await db.dispose()
    (delivery,) = await _deliveries(engine)
    assert (delivery["status"], delivery["last_status_code"]) == ("failed", 307)
    assert [path for path, _, _ in receiver.requests] == ["/hook"]


async def test_only_http_urls_without_credentials_are_accepted(engine: AsyncEngine, db_url: str) -> None:
    world = await make_world(engine)
    for url in ["ftp://example.com/x", "file:///etc/passwd", "javascript:alert(1)", "example.com/hook",
                "http:///nohost", "https://user:pw@example.com/hook"]:  # fmt: skip
        with pytest.raises(InvalidInput):
            await _endpoint(engine, world, url, ["task.*"])
    with pytest.raises(InvalidInput):
        await _endpoint(engine, world, "https://example.com/hook", ["nonsense.*"])
    # The table refuses them too, whoever writes.
    with psycopg.connect(db_url) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "INSERT INTO webhook_endpoints (company_id, url, events, secret_name) "
            "VALUES (%s, 'ftp://x/y', ARRAY['*'], 'webhook.x')",
            (world.company_id,),
        )


async def test_two_workers_never_deliver_one_row_twice(
    engine: AsyncEngine, db_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    world = await make_world(engine)
    await _endpoint(engine, world, receiver.url, ["task.*"])
    async with engine.begin() as conn:
        for i in range(40):
            await tasks.create_task(conn, company="acme", title=f"t{i}", team="Engineering")
    # Two orchestrators: separate pools on one database.
    workers = [
        Database(settings=Settings(home=tmp_path / f"h{i}", database_url=db_url), url=db_url)
        for i in range(2)
    ]

    async def work(db: Database) -> int:
        total = 0
        while sent := await deliver_due(db, KEY, backoff=NOW, limit=3):
            total += sent
        return total

    try:
        counts = await asyncio.gather(*(work(w) for w in workers))
    finally:
        for w in workers:
            await w.dispose()
    assert sum(counts) == 40
    ids = [headers["webhook-id"] for _, headers, _ in receiver.requests]
    assert len(ids) == len(set(ids)) == 40
    assert {d["status"] for d in await _deliveries(engine)} == {"succeeded"}


async def test_fan_out_skips_companies_without_enabled_endpoints(
    engine: AsyncEngine, receiver: Receiver
) -> None:
    world = await make_world(engine)
    async with engine.begin() as conn:
        await tasks.create_task(conn, company="acme", title="nobody listens", team="Engineering")
    endpoint, _ = await _endpoint(engine, world, receiver.url, ["task.*"])
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE webhook_endpoints SET enabled = false WHERE id = :i"), {"i": endpoint["id"]}
        )
        await tasks.create_task(conn, company="acme", title="disabled", team="Engineering")
    assert await _deliveries(engine) == []


async def test_test_redeliver_list_and_remove(engine: AsyncEngine, db: Database, receiver: Receiver) -> None:
    world = await make_world(engine)
    endpoint, secret = await _endpoint(engine, world, receiver.url, ["budget.*"])
    async with engine.begin() as conn:
        first = await endpoints.send_test(conn, world.company_id, endpoint["id"])
    try:
        await _drain(db)
        async with engine.begin() as conn:
            again = await endpoints.redeliver(conn, world.company_id, first)
        await _drain(db)
    finally:
        await db.dispose()
    assert again != first
    (a, b) = receiver.requests
    assert a[1]["webhook-id"] == b[1]["webhook-id"] and json.loads(a[2])["type"] == "webhook.test"
    assert verify(secret, b[1], b[2])
    async with engine.begin() as conn:
        listed = await endpoints.list_deliveries(conn, world.company_id, endpoint_id=endpoint["id"])
        assert [d["id"] for d in listed] == [again, first]
        await endpoints.remove_endpoint(conn, world.company_id, endpoint["id"])
        assert await endpoints.list_endpoints(conn, world.company_id) == []
        left = await conn.execute(
            text("SELECT count(*) FROM secrets WHERE name = :n"), {"n": endpoint["secret_name"]}
        )
        assert left.scalar_one() == 0


def test_outcomes_and_backoff() -> None:
    assert judge(204, None).status == "succeeded"
    assert judge(400, None).status == judge(404, None).status == judge(301, None).status == "failed"
    assert judge(408, None).status == judge(429, None).status == judge(503, None).status == "pending"
    assert judge(None, "ConnectError").status == "pending"
    backoff = Backoff(base_seconds=10, cap_seconds=3600)
    for attempts in range(1, 30):
        raw = min(10 * 2 ** (attempts - 1), 3600)
        assert raw * 0.5 <= backoff.delay(attempts) <= raw * 1.5


async def test_a_missing_signing_secret_fails_its_row_not_the_batch(
    engine: AsyncEngine, db: Database, receiver: Receiver
) -> None:
    from company_agents import secrets_store

    world = await make_world(engine)
    broken, _ = await _endpoint(engine, world, receiver.url + "?broken", ["task.*"])
    await _endpoint(engine, world, receiver.url, ["task.*"])
    async with engine.begin() as conn:
        await secrets_store.delete_secret(conn, company_id=world.company_id, name=broken["secret_name"])
        await tasks.create_task(conn, company="acme", title="x", team="Engineering")
    try:
        assert await deliver_due(db, KEY, backoff=Backoff(base_seconds=3600)) == 2
    finally:
        await db.dispose()
    by_endpoint = {d["endpoint_id"]: d for d in await _deliveries(engine)}
    assert by_endpoint[broken["id"]]["status"] == "pending"
    assert by_endpoint[broken["id"]]["last_error"] == "signing secret unavailable"
    assert [path for path, _, _ in receiver.requests] == ["/hook"]
