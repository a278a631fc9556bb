"""Memory (append-only, latest per topic, scope checks, MEMORY.md) and integrations (metadata only)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from company_agents import companies, integrations, memory, secrets_store
from company_agents.db.database import sqlalchemy_url
from company_agents.errors import InvalidInput, MemoryAccessDenied, NotFound
from company_agents.master_key import MasterKey


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(sqlalchemy_url(db_url), poolclass=NullPool)
    yield eng
    await eng.dispose()


async def company_with_agents(engine: AsyncEngine, name: str = "Acme") -> dict[str, Any]:
    """A company with a team and two agents (inserted directly: hiring belongs to the queue core)."""
    async with engine.begin() as conn:
        company = await companies.create_company(conn, name=name, team_names=["Eng"])
        team_id = (
            await conn.execute(text("SELECT id FROM teams WHERE company_id = :c"), {"c": company["id"]})
        ).scalar_one()
        made = {}
        for agent_name, scopes in (("ada", '["company", "team", "agent", "task"]'), ("bob", '["agent"]')):
            row = (
                (
                    await conn.execute(
                        text(
                            "INSERT INTO agents (company_id, team_id, name, role, adapter, memory_scopes) "
                            "VALUES (:c, :t, :n, 'engineer', 'process', CAST(:s AS jsonb)) RETURNING *"
                        ),
                        {"c": company["id"], "t": team_id, "n": agent_name, "s": scopes},
                    )
                )
                .mappings()
                .one()
            )
            made[agent_name] = dict(row)
    return {"company": company, "team_id": team_id, **made}


async def test_writes_append_and_reads_return_the_latest_per_topic(engine: AsyncEngine) -> None:
    world = await company_with_agents(engine)
    cid, ada = world["company"]["id"], world["ada"]
    async with engine.begin() as conn:
        for topic, body in [("style", "v1"), ("deploy", "use make"), ("style", "v2"), ("style", "v3")]:
            await memory.write_memory(
                conn,
                company_id=cid,
                scope="agent",
                scope_id=ada["id"],
                topic=topic,
                body=body,
                actor=f"agent:{ada['id']}",
                source_agent_id=ada["id"],
            )
        await memory.write_memory(
            conn, company_id=cid, scope="company", scope_id=cid, topic="mission", body="ship"
        )
    async with engine.connect() as conn:
        latest = await memory.read_memory(conn, cid, "agent", ada["id"])
        history = await memory.read_memory(conn, cid, "agent", ada["id"], topic="style", history=True)
        everything = await memory.list_memory(conn, cid)
    assert [(e["topic"], e["body"]) for e in latest] == [("deploy", "use make"), ("style", "v3")]
    assert [e["body"] for e in history] == ["v3", "v2", "v1"]
    assert latest[1]["source_agent_id"] == ada["id"]
    assert [(e["scope"], e["topic"]) for e in everything] == [
        ("company", "mission"),
        ("agent", "deploy"),
        ("agent", "style"),
    ]
    async with engine.connect() as conn:
        with pytest.raises(DBAPIError, match="append-only"):
            await conn.execute(text("UPDATE memory_entries SET body = 'x'"))


async def test_scope_ids_must_belong_to_the_company(engine: AsyncEngine) -> None:
    acme = await company_with_agents(engine)
    globex = await company_with_agents(engine, "Globex")
    async with engine.begin() as conn:
        with pytest.raises(NotFound):
            await memory.write_memory(
                conn,
                company_id=acme["company"]["id"],
                scope="agent",
                scope_id=globex["ada"]["id"],
                topic="t",
                body="b",
            )
        with pytest.raises(InvalidInput):
            await memory.write_memory(
                conn,
                company_id=acme["company"]["id"],
                scope="company",
                scope_id=globex["company"]["id"],
                topic="t",
                body="b",
            )
        with pytest.raises(InvalidInput):
            await memory.write_memory(
                conn,
                company_id=acme["company"]["id"],
                scope="project",
                scope_id=uuid.uuid4(),
                topic="t",
                body="b",
            )


async def test_agents_may_use_only_their_own_listed_scopes(engine: AsyncEngine) -> None:
    acme = await company_with_agents(engine)
    globex = await company_with_agents(engine, "Globex")
    ada, bob = acme["ada"], acme["bob"]
    task_id = uuid.uuid4()
    memory.check_access(ada, "company", ada["company_id"])
    memory.check_access(ada, "team", acme["team_id"])
    memory.check_access(ada, "agent", ada["id"])
    memory.check_access(ada, "task", task_id, task_ids=[task_id])
    refused: list[tuple[dict[str, Any], str, UUID]] = [
        (ada, "agent", bob["id"]),  # another agent
        (ada, "company", globex["company"]["id"]),  # another company
        (ada, "team", globex["team_id"]),
        (ada, "task", task_id),  # not a task it runs
        (bob, "company", bob["company_id"]),  # scope not listed for bob
        (bob, "team", acme["team_id"]),
    ]
    for agent, scope, scope_id in refused:
        with pytest.raises(MemoryAccessDenied):
            memory.check_access(agent, scope, scope_id)
    assert memory.allowed_scopes(bob) == {"agent": {bob["id"]}}


async def test_seed_notes_and_the_memory_md_snapshot(engine: AsyncEngine) -> None:
    acme = await company_with_agents(engine)
    ada, cid = acme["ada"], acme["company"]["id"]
    async with engine.begin() as conn:
        await memory.seed_memory(conn, ada, "Prefers small PRs.\n")
        await memory.write_memory(
            conn, company_id=cid, scope="company", scope_id=cid, topic="mission", body="ship it"
        )
        await memory.write_memory(
            conn, company_id=cid, scope="company", scope_id=cid, topic="mission", body="ship v2"
        )
        snapshot = await memory.memory_snapshot(conn, ada)
        bob_snapshot = await memory.memory_snapshot(conn, acme["bob"])
    assert snapshot.startswith("# Memory\n")
    assert "## Company" in snapshot and "### mission" in snapshot and "ship v2" in snapshot
    assert "ship it" not in snapshot
    assert "## Your notes" in snapshot and "### seed-notes" in snapshot and "Prefers small PRs." in snapshot
    assert "## Team" in snapshot and "_(nothing yet)_" in snapshot
    assert "ship v2" not in bob_snapshot and "## Company" not in bob_snapshot


async def test_integrations_keep_credentials_in_the_secret_store(engine: AsyncEngine) -> None:
    key = MasterKey(os.urandom(32), "test")
    acme = await company_with_agents(engine)
    cid = acme["company"]["id"]
    async with engine.begin() as conn:
        row = await integrations.add_integration(
            conn,
            key,
            company_id=cid,
            kind="github",
            name="gh-main",
            config={"org": "acme"},
            scopes=["repo", "read:org"],
            credential="ghp_TOPSECRET",
        )
        assert row["secret_name"] == "integration.gh-main" and row["scopes"] == ["repo", "read:org"]
        assert "ghp_TOPSECRET" not in repr(row)
        with pytest.raises(InvalidInput, match="credential"):
            await integrations.add_integration(
                conn, key, company_id=cid, kind="slack", name="s", config={"bot_token": "xoxb"}
            )
    async with engine.begin() as conn:
        assert await integrations.use_credential(conn, key, cid, "gh-main") == "ghp_TOPSECRET"
        (listed,) = await integrations.list_integrations(conn, cid)
        assert listed["last_used_at"] is not None
    async with engine.begin() as conn:
        await integrations.remove_integration(conn, company_id=cid, name="gh-main")
        assert await secrets_store.list_secrets(conn, cid) == []
        actions = (
            await conn.execute(
                text("SELECT action FROM audit_events WHERE action LIKE 'integration.%' ORDER BY id")
            )
        ).scalars()
        assert list(actions) == ["integration.added", "integration.removed"]
