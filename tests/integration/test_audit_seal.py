"""The audit sealer and ``verify_trail``: an untouched trail verifies; every kind of tampering is named."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from uuid import UUID

import psycopg
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from company_agents import audit, companies
from company_agents.audit import mac as audit_mac
from company_agents.audit.seal import Watermark, seal_pending, seal_tick
from company_agents.audit.verify import verify_trail
from company_agents.db.database import libpq_url, sqlalchemy_url
from company_agents.db.schema import audit_events, audit_seals
from company_agents.master_key import MasterKey


@pytest.fixture
def key() -> MasterKey:
    return MasterKey(os.urandom(32), "test")


@pytest.fixture
async def engine(db_url: str, key: MasterKey) -> AsyncIterator[AsyncEngine]:
    """Sessions holding the MAC key, as every writer of ours does (``audit.mac``)."""
    eng = create_async_engine(
        sqlalchemy_url(db_url),
        poolclass=NullPool,
        connect_args={"options": audit_mac.session_options(key, db_url)},
    )
    yield eng
    await eng.dispose()


async def add_events(engine: AsyncEngine, n: int, company_id: UUID | None = None) -> list[int]:
    ids = []
    async with engine.begin() as conn:
        for i in range(n):
            ids.append(
                await audit.record(
                    conn,
                    actor="user:test",
                    action="task.created",
                    subject_type="task",
                    subject_id=f"t{i}",
                    company_id=company_id,
                    payload={"n": i, "title": f"task {i}", "nested": {"b": 1, "a": [1, 2]}},
                )
            )
    return ids


async def seal(engine: AsyncEngine, key: MasterKey) -> int:
    async with engine.begin() as conn:
        return await seal_pending(conn, key)


async def verify(engine: AsyncEngine, key: MasterKey, company_id: UUID | None = None) -> list[str]:
    async with engine.connect() as conn:
        report = await verify_trail(conn, {key.key_id: key}, company_id=company_id)
    return [p.kind + f"@{p.seal_id if p.event_id is None else p.event_id}" for p in report.problems]


def tamper(db_url: str, *statements: str) -> None:
    """Run SQL as the superuser with the append-only triggers disabled (session_replication_role)."""
    with psycopg.connect(libpq_url(db_url), autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        for statement in statements:
            conn.execute(statement)


async def test_untouched_trail_verifies_and_seals_chain(engine: AsyncEngine, key: MasterKey) -> None:
    await add_events(engine, 5)
    assert await seal(engine, key) == 5
    await add_events(engine, 3)
    assert await seal(engine, key) == 3
    assert await seal(engine, key) == 0
    async with engine.connect() as conn:
        seals = (await conn.execute(select(audit_seals).order_by(audit_seals.c.id))).mappings().all()
        report = await verify_trail(conn, {key.key_id: key})
    assert [(s["first_event_id"], s["last_event_id"], s["event_count"]) for s in seals] == [
        (1, 5, 5),
        (6, 8, 3),
    ]
    assert seals[1]["prev_seal_hash"] == seals[0]["seal_hash"] and seals[0]["prev_seal_hash"] is None
    assert seals[0]["key_id"] == key.key_id
    assert report.ok and report.events_checked == 8 and report.sealed_through == 8
    assert report.head_seal_hash == seals[1]["seal_hash"]
    await add_events(engine, 2)
    async with engine.connect() as conn:
        report = await verify_trail(conn, {key.key_id: key})
    assert report.ok and report.unsealed_events == 2


async def test_changed_payload_is_named(engine: AsyncEngine, key: MasterKey, db_url: str) -> None:
    await add_events(engine, 6)
    await seal(engine, key)
    tamper(db_url, """UPDATE audit_events SET payload = '{"n": 99}' WHERE id = 4""")
    assert await verify(engine, key) == ["event_changed@4"]


async def test_deleted_event_is_named(engine: AsyncEngine, key: MasterKey, db_url: str) -> None:
    await add_events(engine, 6)
    await seal(engine, key)
    tamper(db_url, "DELETE FROM audit_events WHERE id = 3")
    assert await verify(engine, key) == ["event_deleted@3"]


async def test_backdated_insert_into_a_sealed_gap_is_named(
    engine: AsyncEngine, key: MasterKey, db_url: str
) -> None:
    await add_events(engine, 2)
    # A rolled-back transaction leaves a gap (id 3) inside what gets sealed.
    async with engine.connect() as conn:
        await conn.execute(
            audit_events.insert().values(
                actor="user:x", action="task.created", subject_type="t", subject_id="x"
            )
        )
        await conn.rollback()
    await add_events(engine, 2)
    await seal(engine, key)
    assert await verify(engine, key) == []
    tamper(
        db_url,
        "INSERT INTO audit_events (id, actor, action, subject_type, subject_id, payload, created_at) "
        "OVERRIDING SYSTEM VALUE VALUES (3, 'user:mallory', 'task.completed', 'task', 't0', '{}', "
        "now() - interval '1 day')",
    )
    assert await verify(engine, key) == ["event_inserted@3"]


async def test_insert_before_the_first_seal_is_named(
    engine: AsyncEngine, key: MasterKey, db_url: str
) -> None:
    await add_events(engine, 2)
    await seal(engine, key)
    tamper(
        db_url,
        "INSERT INTO audit_events (id, actor, action, subject_type, subject_id) "
        "OVERRIDING SYSTEM VALUE VALUES (0, 'user:mallory', 'task.completed', 'task', 't0')",
    )
    assert await verify(engine, key) == ["event_inserted@0"]


async def test_reordered_events_are_named(engine: AsyncEngine, key: MasterKey, db_url: str) -> None:
    await add_events(engine, 6)
    await seal(engine, key)
    # Swap events 2 and 5 (every column but the id).
    tamper(
        db_url,
        """UPDATE audit_events a SET payload = b.payload, subject_id = b.subject_id
           FROM audit_events b WHERE (a.id, b.id) IN ((2, 5), (5, 2))""",
    )
    assert await verify(engine, key) == ["event_changed@2", "event_changed@5"]


async def test_seal_tampering_is_named(engine: AsyncEngine, key: MasterKey, db_url: str) -> None:
    for _ in range(3):
        await add_events(engine, 2)
        await seal(engine, key)
    tamper(db_url, "UPDATE audit_seals SET event_count = 1 WHERE id = 2")
    assert (await verify(engine, key))[0] == "seal_changed@2"


async def test_deleted_seal_breaks_the_chain(engine: AsyncEngine, key: MasterKey, db_url: str) -> None:
    for _ in range(3):
        await add_events(engine, 2)
        await seal(engine, key)
    tamper(db_url, "DELETE FROM audit_seals WHERE id = 2")
    problems = await verify(engine, key)
    assert problems[0] == "seal_chain_broken@3"
    assert "event_inserted@3" in problems


async def test_forged_seal_with_another_key_is_refused(engine: AsyncEngine, key: MasterKey) -> None:
    await add_events(engine, 2)
    await seal(engine, MasterKey(os.urandom(32), "other"))
    problems = await verify(engine, key)
    assert problems == ["seal_unknown_key@1"]


async def test_company_filter_reports_only_that_companys_events(
    engine: AsyncEngine, key: MasterKey, db_url: str
) -> None:
    async with engine.begin() as conn:
        a = (await companies.create_company(conn, name="A"))["id"]
        b = (await companies.create_company(conn, name="B"))["id"]
    ids_a = await add_events(engine, 2, a)
    ids_b = await add_events(engine, 2, b)
    await seal(engine, key)
    tamper(db_url, f"UPDATE audit_events SET payload = '{{}}' WHERE id = {ids_b[0]}")
    assert await verify(engine, key, a) == []
    assert await verify(engine, key, b) == [f"event_changed@{ids_b[0]}"]
    assert ids_a


async def test_deleting_a_company_keeps_its_audit_events(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        company = await companies.create_company(conn, name="Gone")
        await companies.archive_company(conn, company["slug"])
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM companies WHERE id = :id"), {"id": company["id"]})
    async with engine.connect() as conn:
        actions = (
            await conn.execute(
                select(audit_events.c.action).where(audit_events.c.company_id == company["id"])
            )
        ).scalars()
        assert sorted(actions) == ["company.archived", "company.created"]


async def test_sealer_waits_for_a_transaction_holding_a_lower_id(engine: AsyncEngine, key: MasterKey) -> None:
    """Out-of-order commit: id 1 commits after id 2; the sealer must not seal 2 without 1."""
    async with engine.connect() as slow, engine.connect() as fast, engine.connect() as sealer:
        await slow.begin()
        await audit.record(slow, actor="user:a", action="task.created", subject_type="t", subject_id="1")
        await fast.begin()
        await audit.record(fast, actor="user:b", action="task.created", subject_type="t", subject_id="2")
        await fast.commit()
        await sealer.begin()
        assert await seal_pending(sealer, key, settle_timeout=0.2) == 0
        await sealer.commit()
        # The loop's step: the watermark taken now (ids <= 2) waits for `slow`.
        await sealer.begin()
        sealed, pending = await seal_tick(sealer, key, None)
        await sealer.commit()
        assert sealed == 0 and pending.last_id == 2
        await sealer.begin()
        sealed, pending2 = await seal_tick(sealer, key, pending)
        await sealer.commit()
        assert sealed == 0 and pending2 == pending
        await slow.commit()
        await sealer.begin()
        sealed, _ = await seal_tick(sealer, key, pending)
        await sealer.commit()
        assert sealed == 2
    assert await verify(engine, key) == []


async def test_two_sealers_never_fork_the_chain(engine: AsyncEngine, key: MasterKey) -> None:
    for _ in range(5):
        await add_events(engine, 20)
        await asyncio.gather(*(seal(engine, key) for _ in range(4)))
    await seal(engine, key)
    async with engine.connect() as conn:
        report = await verify_trail(conn, {key.key_id: key})
    assert report.ok and report.sealed_through == 100 and report.events_checked == 100


def test_watermark_is_hashable() -> None:
    assert Watermark(1, ("3/4",)) == Watermark(1, ("3/4",))
