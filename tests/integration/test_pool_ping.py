"""The pool pings a connection on checkout only after it sat idle, and replaces one found dead.

No ping on a connection back in use at once (the hot path: claims, completions, tool calls); a
connection the server dropped while it sat idle is replaced before the caller sees it.
"""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from company_agents.db.database import libpq_url, ping_idle_connections, sqlalchemy_url


def _engine(url: str, idle_seconds: float) -> AsyncEngine:
    engine = create_async_engine(sqlalchemy_url(url), pool_size=1, max_overflow=0)
    ping_idle_connections(engine.sync_engine, idle_seconds)
    return engine


async def _pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


def _terminate(url: str, pid: int) -> None:
    with psycopg.connect(libpq_url(url), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))


def test_an_idle_connection_killed_by_the_server_is_replaced_before_use(db_url: str) -> None:
    async def main() -> tuple[int, int]:
        engine = _engine(db_url, idle_seconds=0.05)
        try:
            first = await _pid(engine)
            _terminate(db_url, first)
            await asyncio.sleep(0.1)  # idle past the threshold: the next checkout pings
            return first, await _pid(engine)
        finally:
            await engine.dispose()

    first, after = asyncio.run(main())
    assert after != first


def test_a_connection_back_in_use_at_once_is_not_pinged(db_url: str) -> None:
    # With a threshold no test reaches, a connection killed under the pool reaches its caller: the
    # proof that no ping happened. The pool replaces it for the next checkout.
    async def main() -> tuple[int, int]:
        engine = _engine(db_url, idle_seconds=3600)
        try:
            first = await _pid(engine)
            assert await _pid(engine) == first  # the same connection again
            _terminate(db_url, first)
            with pytest.raises(DBAPIError):
                await _pid(engine)
            return first, await _pid(engine)
        finally:
            await engine.dispose()

    first, after = asyncio.run(main())
    assert after != first
