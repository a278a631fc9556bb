"""The runner's fenced writes through a broken connection, on real PostgreSQL.

The connection is broken for real: the write's own session is terminated (``pg_terminate_backend``,
SQLSTATE 57P01, as on a server restart) right after the write committed, so its reply is "lost". The
retry comes back stale; the runner must tell "my write had been applied" from "I lost the lease".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from company_agents import leases, tasks
from company_agents.adapters.config import AdapterConfig
from company_agents.adapters.run_writes import APPLIED_EARLIER, ended
from company_agents.adapters.runner import AgentRun
from company_agents.db.database import Database
from company_agents.master_key import MasterKey
from company_agents.settings import Settings
from tests.integration.queue_helpers import engine, make_world

__all__ = ["engine"]  # the fixture, re-exported for pytest

Write = Callable[[AsyncConnection], Awaitable[Any]]


async def _running(engine: AsyncEngine, db_url: str, home: Path) -> AgentRun:
    world = await make_world(engine, agent_names=("ada",))
    async with engine.begin() as conn:
        await tasks.create_task(conn, company="acme", title="t", agent="ada", max_attempts=1)
    async with engine.begin() as conn:
        (claim,) = await leases.claim(
            conn, agent_id=world.agents["ada"]["id"], holder="test", lease_seconds=60
        )
        await leases.start(conn, claim.identity(), fencing_token=claim.fencing_token, workspace_path="/x")
    settings = Settings(home=home, database_url=db_url, lease_seconds=5)
    return AgentRun(
        settings,
        Database(settings=settings, url=db_url),
        claim,
        AdapterConfig(name="test", type="process", binary="/bin/true"),
        asyncio.Event(),
        MasterKey(key=bytes(32), source="test"),
    )


def _first_try_breaks(write: Write, first: Write | None = None) -> tuple[Write, list[int]]:
    """``write``, whose first try runs ``first`` (by default ``write`` itself, which commits: autocommit)
    and then loses its connection."""
    tries: list[int] = []

    async def work(conn: AsyncConnection) -> Any:
        tries.append(1)
        if len(tries) == 1:
            await (first or write)(conn)
            await conn.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        return await write(conn)

    return work, tries


def _complete(run: AgentRun) -> Write:
    return lambda c: leases.complete(c, run.ident, fencing_token=run.claim.fencing_token, output="done")


async def _count(engine: AsyncEngine, sql: str, **params: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(sql), params)).scalar_one())


async def test_a_complete_whose_reply_was_lost_counts_as_applied_once(
    engine: AsyncEngine, db_url: str, home: Path
) -> None:
    run = await _running(engine, db_url, home)
    work, tries = _first_try_breaks(_complete(run))
    try:
        result = await run._write("mark_complete", work, ended("succeeded", "complete"))
    finally:
        await run.db.dispose()
        run.log.close()
    assert len(tries) == 2, "the broken connection must have been retried"
    assert result is APPLIED_EARLIER
    assert not run.state.lost_lease
    task_id = str(run.claim.task_id)
    assert (
        await _count(engine, "SELECT count(*) FROM tasks WHERE id = :t AND status = 'review'", t=task_id) == 1
    )
    events = "SELECT count(*) FROM audit_events WHERE action = 'task.completed' AND subject_id = :t"
    assert await _count(engine, events, t=task_id) == 1


async def test_a_retry_that_finds_the_lease_reaped_is_a_lost_lease(
    engine: AsyncEngine, db_url: str, home: Path
) -> None:
    run = await _running(engine, db_url, home)

    async def reaped_meanwhile(conn: AsyncConnection) -> None:
        await conn.execute(
            text(
                "UPDATE leases SET acquired_at = now() - interval '2 s', "
                "renewed_at = now() - interval '2 s', expires_at = now() - interval '1 s'"
            )
        )
        assert len(await leases.reap_expired(conn)) == 1

    # The complete's first try never reaches the database, and the lease is reaped before the retry:
    # that retry comes back stale, and must not be mistaken for "applied earlier".
    work, tries = _first_try_breaks(_complete(run), first=reaped_meanwhile)
    try:
        result = await run._write("mark_complete", work, ended("succeeded", "complete"))
    finally:
        await run.db.dispose()
        run.log.close()
    assert len(tries) == 2
    assert result is None and run.state.lost_lease
    runs = "SELECT count(*) FROM runs WHERE id = :r AND exit_reason = 'lease_expired'"
    assert await _count(engine, runs, r=str(run.claim.run_id)) == 1
    events = "SELECT count(*) FROM audit_events WHERE action = 'task.completed' AND subject_id = :t"
    assert await _count(engine, events, t=str(run.claim.task_id)) == 0
