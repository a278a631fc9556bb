"""Per-event MACs: every event is tamper-evident from the moment it is written, sealed or not.

The MAC is computed by a trigger at insert, with the session key the process hands to its own
connections (``audit.mac``); ``verify_trail`` checks it for every event, and counts the events it
cannot prove. The anchor (``audit.anchor``) catches the newest seals deleted with their events.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from company_agents import audit, crypto
from company_agents.audit import anchor as audit_anchor
from company_agents.audit import mac as audit_mac
from company_agents.audit.seal import EVENT_CANONICAL_SQL, chain_head, seal_pending
from company_agents.audit.verify import VerifyReport, verify_trail
from company_agents.db.database import libpq_url, sqlalchemy_url
from company_agents.db.schema import audit_events
from company_agents.master_key import MasterKey


@pytest.fixture
def key() -> MasterKey:
    return MasterKey(os.urandom(32), "test")


@pytest.fixture
async def engine(db_url: str, key: MasterKey) -> AsyncIterator[AsyncEngine]:
    """An engine whose sessions hold the MAC key, as every process of ours does."""
    eng = create_async_engine(
        sqlalchemy_url(db_url),
        poolclass=NullPool,
        connect_args={"options": audit_mac.session_options(key, db_url)},
    )
    yield eng
    await eng.dispose()


@pytest.fixture
async def keyless(db_url: str) -> AsyncIterator[AsyncEngine]:
    """A session without the key: what a foreign writer (or an old process) looks like."""
    eng = create_async_engine(sqlalchemy_url(db_url), poolclass=NullPool)
    yield eng
    await eng.dispose()


async def add(engine: AsyncEngine, n: int, action: str = "task.created") -> list[int]:
    async with engine.begin() as conn:
        return [
            await audit.record(
                conn,
                actor="user:test",
                action=action,
                subject_type="task",
                subject_id=f"t{i}",
                payload={"n": i, "text": "é ü \u2603", "nested": {"b": [1, 2.5], "a": None}},
            )
            for i in range(n)
        ]


async def seal(engine: AsyncEngine, key: MasterKey) -> int:
    async with engine.begin() as conn:
        return await seal_pending(conn, key)


async def report(
    engine: AsyncEngine, *keys: MasterKey, anchor: audit_anchor.Anchor | None = None
) -> VerifyReport:
    async with engine.connect() as conn:
        return await verify_trail(conn, {k.key_id: k for k in keys}, anchor=anchor)


def tamper(db_url: str, *statements: str) -> None:
    """As the superuser, with the append-only triggers off (session_replication_role)."""
    with psycopg.connect(libpq_url(db_url), autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        for statement in statements:
            conn.execute(statement)


async def test_every_insert_path_gets_a_mac_that_python_can_check(
    engine: AsyncEngine, key: MasterKey
) -> None:
    ids = await add(engine, 2)
    # A plain SQL insert (as the task path's CTEs and the claim function do) goes through the trigger.
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO audit_events (actor, action, subject_type, subject_id, payload) "
                "SELECT 'system:test', 'task.started', 'task', 'x' || g, jsonb_build_object('g', g) "
                "FROM generate_series(1, 3) g"
            )
        )
        rows = (
            await conn.execute(
                select(
                    audit_events.c.id,
                    audit_events.c.mac,
                    audit_events.c.mac_key_id,
                    text(EVENT_CANONICAL_SQL),
                ).order_by(audit_events.c.id)
            )
        ).all()
    assert [r[0] for r in rows][:2] == ids and len(rows) == 5
    mac_key = crypto.derive_key(key, crypto.AUDIT_MAC_PURPOSE)
    for _id, mac, key_id, canonical in rows:
        assert key_id == key.key_id
        assert bytes(mac) == hmac.new(mac_key, bytes(canonical), hashlib.sha256).digest()
    rep = await report(engine, key)
    assert rep.ok and rep.unsealed_events == 5 and rep.mac_verified == 5 and rep.unproven == 0


async def test_a_changed_unsealed_event_is_named(engine: AsyncEngine, key: MasterKey, db_url: str) -> None:
    ids = await add(engine, 4)
    tamper(db_url, f"""UPDATE audit_events SET payload = '{{"n": 99}}' WHERE id = {ids[2]}""")
    rep = await report(engine, key)
    assert not rep.ok and rep.unsealed_events == 4
    assert rep.first_problem is not None and rep.first_problem.kind == "event_changed"
    assert rep.first_problem.event_id == ids[2] and "MAC" in rep.first_problem.message
    assert [p.event_id for p in rep.problems] == [ids[2]]


async def test_a_changed_mac_of_a_sealed_event_is_named(
    engine: AsyncEngine, key: MasterKey, db_url: str
) -> None:
    ids = await add(engine, 3)
    await seal(engine, key)
    tamper(db_url, f"UPDATE audit_events SET mac = sha256('x') WHERE id = {ids[1]}")
    rep = await report(engine, key)
    assert [(p.kind, p.event_id) for p in rep.problems] == [("event_changed", ids[1])]


async def test_an_event_without_a_mac_is_unproven_and_counted(
    engine: AsyncEngine, keyless: AsyncEngine, key: MasterKey
) -> None:
    # The trail of an upgraded instance: events from before the MACs, then events with one.
    old = await add(keyless, 2, action="task.completed")
    await add(engine, 2)
    rep = await report(engine, key)
    assert not rep.ok and rep.unproven == 2 and rep.mac_verified == 2
    assert rep.first_problem is not None and rep.first_problem.kind == "events_unproven"
    assert rep.first_problem.event_id == old[0]
    assert "2 events" in rep.first_problem.message and f"event {old[0]}" in rep.first_problem.message
    # Once a seal covers them, the events from before the MACs are proven by it.
    assert await seal(engine, key) == 4
    rep = await report(engine, key)
    assert rep.ok and rep.unproven == 0 and rep.sealed_events == 4


async def test_a_mac_under_an_unknown_key_is_unproven(engine: AsyncEngine, key: MasterKey) -> None:
    await add(engine, 1)
    rep = await report(engine, MasterKey(os.urandom(32), "other"))
    assert not rep.ok and rep.unproven == 1


async def test_macs_from_before_a_rotation_verify_with_the_old_key(db_url: str, key: MasterKey) -> None:
    new = MasterKey(os.urandom(32), "new")
    engines = [
        create_async_engine(
            sqlalchemy_url(db_url), poolclass=NullPool, connect_args={"options": audit_mac.session_options(k)}
        )
        for k in (key, new)
    ]
    try:
        await add(engines[0], 1)
        await add(engines[1], 1)
        assert (await report(engines[1], key, new)).ok
        assert (await report(engines[1], new)).unproven == 1
    finally:
        for eng in engines:
            await eng.dispose()


async def test_the_session_key_never_shows_in_errors_or_activity(
    engine: AsyncEngine, key: MasterKey, db_url: str
) -> None:
    secret = audit_mac.session_value(key).split(":", 1)[1]
    async with engine.connect() as conn:
        with pytest.raises(Exception) as failure:
            await conn.execute(
                text(
                    "INSERT INTO audit_events (actor, action, subject_type, subject_id) "
                    "VALUES ('x', 'y', 'z', 'w')"
                )
            )
        await conn.rollback()
        assert secret not in str(failure.value)
        with psycopg.connect(libpq_url(db_url), autocommit=True) as other:
            seen = other.execute(
                "SELECT string_agg(coalesce(query, ''), ' ') FROM pg_stat_activity"
            ).fetchone()
            own = other.execute("SELECT current_setting('company_agents.audit_mac_key', true)").fetchone()
        assert seen is not None and secret not in (seen[0] or "")
        assert own is not None and not own[0]  # another session does not see it
    assert secret not in repr(engine.url) and secret not in str(engine.url)


async def test_anchor_catches_the_newest_seals_deleted_with_their_events(
    engine: AsyncEngine, key: MasterKey, db_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "audit-anchor.json"
    await add(engine, 3)
    await seal(engine, key)
    await add(engine, 2)
    await seal(engine, key)
    async with engine.connect() as conn:
        head = await chain_head(conn)
    assert head is not None
    assert audit_anchor.write_anchor(path, audit_anchor.Anchor.from_seal(head))
    anchor = audit_anchor.read_anchor(path)
    assert anchor is not None and anchor.seal_id == head["id"] and (path.stat().st_mode & 0o777) == 0o600
    assert (await report(engine, key, anchor=anchor)).ok
    # Without the anchor, removing seal 2 and the events it covers leaves a trail that looks whole.
    tamper(
        db_url,
        f"DELETE FROM audit_events WHERE id >= {head['first_event_id']}",
        f"DELETE FROM audit_seals WHERE id = {head['id']}",
    )
    assert (await report(engine, key)).ok
    rep = await report(engine, key, anchor=anchor)
    assert rep.first_problem is not None and rep.first_problem.kind == "anchor_seal_missing"
    assert f"seal {head['id']}" in rep.first_problem.message
    # A seal with the anchored id but other contents is caught as well.
    await add(engine, 1)
    await seal(engine, key)
    async with engine.connect() as conn:
        reseal = await chain_head(conn)
    assert reseal is not None
    forged = audit_anchor.Anchor.from_seal({**reseal, "id": head["id"]})
    rep = await report(engine, key, anchor=forged)
    assert rep.first_problem is not None and rep.first_problem.kind in {
        "anchor_seal_missing",
        "anchor_seal_changed",
    }


def test_anchor_only_moves_forward(tmp_path: Path) -> None:
    path = tmp_path / "audit-anchor.json"
    first = audit_anchor.Anchor(seal_id=5, seal_hash="a" * 64, last_event_id=50, key_id="k", at="t")
    older = audit_anchor.Anchor(seal_id=4, seal_hash="b" * 64, last_event_id=40, key_id="k", at="t")
    assert audit_anchor.write_anchor(path, first)
    assert not audit_anchor.write_anchor(path, older)
    assert audit_anchor.read_anchor(path) == first


async def test_the_sealer_never_vouches_for_an_event_without_a_mac(
    engine: AsyncEngine, keyless: AsyncEngine, key: MasterKey
) -> None:
    await add(engine, 2)
    await seal(engine, key)
    stray = await add(keyless, 1, action="task.completed")
    after = await add(engine, 1)
    assert await seal(engine, key) == 1  # the stray event is left out, the next one sealed
    rep = await report(engine, key)
    assert [(p.kind, p.event_id) for p in rep.problems] == [("event_inserted", stray[0])]
    assert "no MAC" in rep.problems[0].message and rep.sealed_through == after[0]


async def test_stripped_macs_are_caught_once_the_anchor_records_where_macs_begin(
    engine: AsyncEngine, key: MasterKey, db_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "audit-anchor.json"
    ids = await add(engine, 3)
    async with engine.begin() as conn:
        assert await seal_pending(conn, key) == 3
        moved = await audit_anchor.next_anchor(conn, path)
    assert moved is not None and moved.macs_from == ids[0]
    assert audit_anchor.write_anchor(path, moved)
    # Stripping every MAC makes the trail look like one from before the MACs, which seals alone prove...
    tamper(db_url, "UPDATE audit_events SET mac = NULL, mac_key_id = NULL")
    assert (await report(engine, key)).ok
    # ...but the anchor, outside the database, says MACs began at the first event.
    rep = await report(engine, key, anchor=audit_anchor.read_anchor(path))
    assert not rep.ok and rep.unproven == 3 and rep.first_problem is not None
    assert rep.first_problem.kind == "events_unproven" and rep.first_problem.event_id == ids[0]
