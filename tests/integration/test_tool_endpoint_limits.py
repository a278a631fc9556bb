"""The tool endpoint's limits: a body cap (413), bounded rejection audits, 503 when the database is down."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from company_agents import leases, tasks
from company_agents.tokens import LEASE_TOKEN_PREFIX
from tests.integration.queue_helpers import engine, make_world, serve_tool_endpoint

__all__ = ["engine"]

pytestmark = pytest.mark.slow

CAP = 4096


def _serve(db_url: str, home: Path) -> Iterator[str]:
    return serve_tool_endpoint(db_url, home, tool_max_body_bytes=CAP)


@pytest.fixture
def tool_url(db_url: str, tmp_path: Path) -> Iterator[str]:
    yield from _serve(db_url, tmp_path / "home")


@pytest.fixture
def down_url(tmp_path: Path) -> Iterator[str]:
    """A tool endpoint whose database is not there (nothing listens on port 1)."""
    yield from _serve("postgresql://nobody@127.0.0.1:1/none", tmp_path / "home")


def _post(base: str, tool: str, token: str, json: Mapping[str, object]) -> httpx.Response:
    return httpx.post(
        f"{base}/tools/{tool}", headers={"Authorization": f"Bearer {token}"}, timeout=30, json=json
    )


async def _count(engine: AsyncEngine, action: str) -> int:
    async with engine.connect() as conn:
        query = text("SELECT count(*) FROM audit_events WHERE action = :a")
        return int((await conn.execute(query, {"a": action})).scalar_one())


async def _zombie(engine: AsyncEngine) -> tuple[leases.Claim, leases.Claim]:
    """A claim whose lease was reaped and taken over by another attempt: its writes are stale."""
    world = await make_world(engine)
    async with engine.begin() as conn:
        task = await tasks.create_task(conn, company="acme", title="Long job", team="Engineering")
        (zombie,) = await leases.claim(conn, agent_id=world.agents["ada"]["id"], holder="z", lease_seconds=60)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE leases SET acquired_at = now() - interval '2 s', "
                "renewed_at = now() - interval '2 s', expires_at = now() - interval '1 s' WHERE task_id = :t"
            ),
            {"t": task["id"]},
        )
        await leases.reap_expired(conn, backoff=leases.RetryBackoff(0, 0))
    async with engine.begin() as conn:
        (fresh,) = await leases.claim(conn, agent_id=world.agents["bob"]["id"], holder="f", lease_seconds=60)
    assert fresh.task_id == zombie.task_id
    return zombie, fresh


async def test_a_zombie_looping_on_renew_lease_is_audited_once(engine: AsyncEngine, tool_url: str) -> None:
    zombie, _ = await _zombie(engine)
    body = {"fencingToken": zombie.fencing_token}
    answers = [_post(tool_url, "renew_lease", zombie.lease_token, json=body) for _ in range(50)]
    assert [a.status_code for a in answers] == [409] * 50
    assert {a.json()["error"]["code"] for a in answers} == {"stale_fencing_token"}
    assert await _count(engine, "lease.stale_write_rejected") == 1

    # Another tool is another row (once); concurrent retries of it still make exactly one.
    def progress() -> int:
        body = {"fencingToken": zombie.fencing_token, "message": "still here"}
        return _post(tool_url, "report_progress", zombie.lease_token, json=body).status_code

    codes = await asyncio.gather(*(asyncio.to_thread(progress) for _ in range(10)))
    assert codes == [409] * 10
    assert await _count(engine, "lease.stale_write_rejected") == 2
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT payload FROM audit_events WHERE action = 'lease.stale_write_rejected'")
            )
        ).scalars()
        assert sorted(p["tool"] for p in rows) == ["renew_lease", "report_progress"]

    # A minute later the same zombie is recorded again (the window slides; nothing is lost for good).
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        await conn.execute(text("UPDATE audit_events SET created_at = created_at - interval '61 s'"))
        await conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))
    assert _post(tool_url, "renew_lease", zombie.lease_token, json=body).status_code == 409
    assert await _count(engine, "lease.stale_write_rejected") == 3


async def test_bodies_over_the_cap_are_refused_with_413(engine: AsyncEngine, tool_url: str) -> None:
    world = await make_world(engine)
    async with engine.begin() as conn:
        await tasks.create_task(conn, company="acme", title="Job", agent="ada")
        (claim,) = await leases.claim(conn, agent_id=world.agents["ada"]["id"], holder="t", lease_seconds=60)
    big = {"fencingToken": claim.fencing_token, "message": "x" * (CAP + 100)}

    declared = _post(tool_url, "report_progress", claim.lease_token, json=big)
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "payload_too_large"
    assert declared.json()["error"]["details"] == {"maxBytes": CAP}

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it arrives
        yield b'{"fencingToken": %d, "message": "' % claim.fencing_token
        for _ in range(CAP // 512 + 2):
            yield b"y" * 512
        yield b'"}'

    chunked = httpx.post(
        f"{tool_url}/tools/report_progress",
        headers={"Authorization": f"Bearer {claim.lease_token}", "Content-Type": "application/json"},
        content=chunks(),
        timeout=30,
    )
    assert chunked.status_code == 413 and chunked.json()["error"]["code"] == "payload_too_large"

    # Nothing was stored; a body under the cap is served as usual.
    async with engine.connect() as conn:
        stored = (await conn.execute(text("SELECT count(*) FROM run_checkpoints"))).scalar_one()
    assert stored == 0
    small = {"fencingToken": claim.fencing_token, "message": "x" * (CAP - 200)}
    assert _post(tool_url, "report_progress", claim.lease_token, json=small).status_code == 200


def test_a_database_outage_is_503_with_retry_after_and_the_json_body(down_url: str) -> None:
    answer = _post(down_url, "renew_lease", LEASE_TOKEN_PREFIX + "0" * 40, json={"fencingToken": 1})
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"].isdigit()
    error = answer.json()["error"]
    assert set(error) == {"code", "message", "details"} and error["code"] == "database_unavailable"
    assert "SELECT" not in error["message"] and "\n" not in error["message"]


def test_every_error_has_the_json_body(down_url: str) -> None:
    for method, path, status in [("GET", "/nope", 404), ("GET", "/tools/renew_lease", 405)]:
        answer = httpx.request(method, f"{down_url}{path}", timeout=30)
        assert answer.status_code == status
        assert set(answer.json()["error"]) == {"code", "message", "details"}, answer.text


async def test_repeated_memory_refusals_are_audited_once(engine: AsyncEngine, tool_url: str) -> None:
    world = await make_world(engine)
    ada, bob = world.agents["ada"], world.agents["bob"]
    body = {"scope": "agent", "scopeId": str(bob["id"])}
    answers = [_post(tool_url, "memory_read", ada["token"], json=body).status_code for _ in range(20)]
    assert answers == [403] * 20
    assert await _count(engine, "memory.access_denied") == 1
