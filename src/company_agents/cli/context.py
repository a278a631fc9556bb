"""Opening the database for one CLI command: the same server as the orchestrator, attached or started."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents.db.database import Database, open_database
from company_agents.db.errors import is_conflict
from company_agents.db.retry import retry_transient
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


def run_in_transaction(
    settings: Settings, work: Callable[[AsyncConnection], Awaitable[T]], *, retry: bool = True
) -> T:
    """Run ``work`` in one transaction (committed when it returns, rolled back when it raises).

    This is the CLI's transaction boundary, so it is where a deadlock or serialization failure is
    retried: the whole transaction again, on a fresh one (the server rolled the failed one back). Only
    those: after a connection lost mid-COMMIT a write may or may not have been applied, and a command
    such as ``task create`` is not idempotent. ``retry=False`` for work with effects outside the
    database (output streamed as it is read).
    """
    with opened(settings) as db:

        async def once() -> T:
            async with db.engine.begin() as conn:
                return await work(conn)

        async def main() -> T:
            try:
                if not retry:
                    return await once()
                return await retry_transient(once, what="cli transaction", retry_on=is_conflict)
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
