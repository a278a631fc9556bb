"""The orchestrators registry (``runtime.registry``) on real PostgreSQL: gone after three missed beats,
pruned after a day, a dead process of this host dropped at the next start, a missing row put back."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from company_agents.db.database import Database
from company_agents.master_key import MasterKey
from company_agents.runtime.registry import (
    Registration,
    beat,
    deregister,
    list_orchestrators,
    register,
    run_heartbeat,
)
from company_agents.settings import Settings

KEY = MasterKey(b"k" * 32, "test")


@pytest.fixture
def db(db_url: str, tmp_path: Path) -> Iterator[Database]:
    database = Database(settings=Settings(home=tmp_path / "home", database_url=db_url), url=db_url)
    yield database
    asyncio.run(database.dispose())


async def _register(db: Database, holder: str = "h:1") -> Registration:
    return await register(
        db, holder=holder, schema_revision="0015", isolation="none", master_key=KEY, api_url="", interval=5
    )


async def _list(db: Database) -> list[dict[str, object]]:
    async with db.engine.connect() as conn:
        return await list_orchestrators(conn)


def _sql(url: str, statement: str, *params: object) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(statement, params)


async def test_gone_after_three_missed_beats_then_pruned(db: Database, db_url: str) -> None:
    one, two = await _register(db), await _register(db, "h:2")
    assert [r["alive"] for r in await _list(db)] == [True, True]
    _sql(
        db_url,
        "UPDATE orchestrators SET last_heartbeat = now() - interval '16 seconds' WHERE id = %s",
        two.id,
    )
    rows = {r["id"]: r for r in await _list(db)}
    assert rows[one.id]["alive"] and not rows[two.id]["alive"]
    _sql(
        db_url, "UPDATE orchestrators SET last_heartbeat = now() - interval '25 hours' WHERE id = %s", two.id
    )
    await beat(db, one)  # whoever beats prunes
    assert [r["id"] for r in await _list(db)] == [one.id]
    await deregister(db, one)
    assert await _list(db) == []


async def test_a_missing_row_is_put_back_by_the_next_beat(db: Database, db_url: str) -> None:
    reg = await _register(db)
    _sql(db_url, "DELETE FROM orchestrators")
    await beat(db, reg)
    assert [r["id"] for r in await _list(db)] == [reg.id]


async def test_a_dead_process_of_this_host_is_dropped_at_the_next_start(db: Database, db_url: str) -> None:
    # A pid above the kernel's limit is one no process can have.
    dead = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1
    old = await _register(db)
    _sql(db_url, "UPDATE orchestrators SET pid = %s WHERE id = %s", dead, old.id)
    other_host = await _register(db, "elsewhere:1")
    _sql(
        db_url,
        "UPDATE orchestrators SET host = 'elsewhere', pid = %s WHERE id = %s",
        dead,
        other_host.id,
    )
    new = await _register(db)
    # This host's dead row is gone; another host's row is left to its own host (and the prune).
    assert sorted(str(r["id"]) for r in await _list(db)) == sorted([str(new.id), str(other_host.id)])
    assert os.getpid() in [r["pid"] for r in await _list(db)]


async def test_the_heartbeat_refuses_when_the_database_key_moved(db: Database, db_url: str) -> None:
    reg = await _register(db)
    _sql(db_url, "INSERT INTO database_key (id, key_id) VALUES (1, 'another0key0id00')")
    stop = asyncio.Event()
    await asyncio.wait_for(run_heartbeat(db, reg, KEY, interval=0.05, stop=stop), 30)
    assert stop.is_set() and reg.refused is not None
    assert "another0key0id00" in reg.refused.message and KEY.key_id in reg.refused.message


async def test_an_unchanged_key_keeps_beating(db: Database) -> None:
    reg = await _register(db)
    async with db.engine.begin() as conn:
        await conn.execute(text("INSERT INTO database_key (id, key_id) VALUES (1, :k)"), {"k": KEY.key_id})
    assert await beat(db, reg) == KEY.key_id and reg.refused is None
