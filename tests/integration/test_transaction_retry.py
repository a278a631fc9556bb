"""The CLI's transaction boundary retries a deadlock or serialization failure, the whole transaction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents.cli.context import run_in_transaction, run_read
from company_agents.settings import Settings

RAISE = "DO $$ BEGIN RAISE EXCEPTION 'forced' USING ERRCODE = '{code}'; END $$"


@pytest.mark.parametrize("code", ["40P01", "40001"])
def test_a_transient_conflict_reruns_the_whole_transaction(
    db_url: str, make_settings: Callable[..., Settings], code: str
) -> None:
    settings = make_settings(database_url=db_url)
    calls: list[int] = []

    async def work(conn: AsyncConnection) -> Any:
        calls.append(1)
        await conn.execute(text("CREATE TABLE IF NOT EXISTS retry_probe (n int)"))
        await conn.execute(text("INSERT INTO retry_probe VALUES (:n)"), {"n": len(calls)})
        if len(calls) == 1:  # the server reports the conflict after this try has written
            await conn.execute(text(RAISE.format(code=code)))
        return len(calls)

    assert run_in_transaction(settings, work) == 2
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT n FROM retry_probe").fetchall()
    assert rows == [(2,)], "the failed try was rolled back whole; only the retry's write is there"


def test_other_errors_are_not_retried(db_url: str, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(database_url=db_url)
    calls: list[int] = []

    async def work(conn: AsyncConnection) -> Any:
        calls.append(1)
        await conn.execute(text(RAISE.format(code="23505")))

    with pytest.raises(Exception, match="forced"):
        run_in_transaction(settings, work)
    assert calls == [1]


def test_a_lost_connection_is_not_rerun_by_the_cli(
    db_url: str, make_settings: Callable[..., Settings]
) -> None:
    """A connection lost mid-transaction leaves unknown whether a COMMIT landed: a `task create` run
    again could create the task twice, so the CLI reports the error instead."""
    settings = make_settings(database_url=db_url)
    calls: list[int] = []

    async def work(conn: AsyncConnection) -> Any:
        calls.append(1)
        await conn.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))

    with pytest.raises(Exception, match=r"terminat|closed|connection"):
        run_in_transaction(settings, work)
    assert calls == [1]


def test_work_with_outside_effects_can_opt_out(db_url: str, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(database_url=db_url)
    calls: list[int] = []

    async def work(conn: AsyncConnection) -> Any:
        calls.append(1)
        await conn.execute(text(RAISE.format(code="40P01")))

    with pytest.raises(Exception, match="forced"):
        run_in_transaction(settings, work, retry=False)
    assert calls == [1]


def test_a_read_command_cannot_write(db_url: str, make_settings: Callable[..., Settings]) -> None:
    """``run_read`` is what list and show commands use: its transaction is read-only, so a "read"
    that writes fails loudly instead of adding a row (or an audit event nobody MACs)."""
    settings = make_settings(database_url=db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS read_probe (n int)")
        conn.execute("TRUNCATE read_probe")

    async def count(conn: AsyncConnection) -> int:
        return int((await conn.execute(text("SELECT count(*) FROM read_probe"))).scalar_one())

    async def write(conn: AsyncConnection) -> None:
        await conn.execute(text("INSERT INTO read_probe VALUES (1)"))

    assert run_read(settings, count) == 0
    with pytest.raises(DBAPIError, match="read-only transaction"):
        run_read(settings, write)
    assert run_read(settings, count) == 0, "nothing was written"
    run_in_transaction(settings, write)
    assert run_read(settings, count) == 1, "the same work writes through the write boundary"
