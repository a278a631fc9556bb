"""Opening the database for one CLI command: the same server as the orchestrator, attached or started."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents.db.database import Database, open_database
from company_agents.home import ensure_home
from company_agents.master_key import MasterKey, load_master_key, master_key_status
from company_agents.master_key.rotation import check_key_matches_database, recover_pending_rotation
from company_agents.settings import Settings
from company_agents.startup import ensure_schema

T = TypeVar("T")


@contextmanager
def opened(settings: Settings) -> Iterator[Database]:
    """The database with an up-to-date schema (the embedded one is migrated; others must be)."""
    ensure_home(settings)
    master_key_status(settings)
    db = open_database(settings)
    try:
        ensure_schema(db)
        yield db
    finally:
        db.close()


def run_in_transaction(settings: Settings, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run ``work`` in one transaction (committed when it returns, rolled back when it raises)."""
    with opened(settings) as db:

        async def main() -> T:
            try:
                async with db.engine.begin() as conn:
                    return await work(conn)
            finally:
                await db.dispose()

        return asyncio.run(main())


def run_with_master_key(
    settings: Settings, work: Callable[[Database, MasterKey], Awaitable[T]], *, create: bool = False
) -> T:
    """Run ``work`` with the database and the master key (after recovering an interrupted rotation).

    ``work`` opens its own transactions on ``db.engine``; the key must match the database's secrets.
    """
    with opened(settings) as db:
        recover_pending_rotation(settings, db)
        key = load_master_key(settings, create=create)
        check_key_matches_database(db, key)

        async def main() -> T:
            try:
                return await work(db, key)
            finally:
                await db.dispose()

        return asyncio.run(main())
