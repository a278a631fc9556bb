"""Opening the database for one CLI command: the same server as the orchestrator, attached or started.

A command that may write audit events holds the master key, so its sessions MAC every event they
insert (``audit.mac``), and after its transaction it seals what is pending when no ``up`` is there to
do it (``audit_seal.seal_pass``): a CLI-only instance is as tamper-evident as one with ``up`` running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from company_agents.db.database import Database, open_database
from company_agents.db.errors import first_line, is_conflict
from company_agents.db.retry import retry_transient
from company_agents.home import ensure_home
from company_agents.master_key import MasterKey, master_key_status
from company_agents.settings import Settings
from company_agents.startup import ensure_schema

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

T = TypeVar("T")

log = logging.getLogger(__name__)


@contextmanager
def opened(settings: Settings, *, audit_key: bool = False) -> Iterator[Database]:
    """The database with an up-to-date schema (the embedded one is migrated; others must be).

    With ``audit_key``, the master key is loaded (after recovering an interrupted rotation), checked
    against the key the database belongs to (``master_key.owner``; recorded on first use) and set as
    ``db.audit_key``; a missing key file is created only for a database that has no key yet, the rule
    ``up`` follows. Only the key file's existence is checked otherwise: no extra query.
    """
    ensure_home(settings)
    master_key_status(settings)  # refuse an unsafe key before touching the database
    db = open_database(settings)
    try:
        ensure_schema(db)
        if audit_key:
            # Imported here: a read command never loads the key, and these pull in the crypto stack.
            from company_agents.master_key.owner import bind_master_key
            from company_agents.master_key.rotation import recover_pending_rotation

            recover_pending_rotation(settings, db)
            db.audit_key = bind_master_key(settings, db)
        yield db
    finally:
        db.close()


async def _seal_pending(settings: Settings, db: Database) -> None:
    """The seal pass after a command's work has committed; a failure here never fails the command."""
    if db.audit_key is None:
        return
    from company_agents.audit.anchor import anchor_path
    from company_agents.audit.seal import seal_pass

    try:
        await seal_pass(db.engine, db.audit_key, anchor=anchor_path(settings))
    except Exception as exc:  # the events keep their MACs; the next pass (or `up`) seals them
        log.warning(
            "could not seal the audit trail after the command: %s",
            first_line(exc),
            extra={"action": "audit_seal_pass_failed"},
        )


def run_in_transaction(
    settings: Settings, work: Callable[[AsyncConnection], Awaitable[T]], *, retry: bool = True
) -> T:
    """Run ``work`` in one transaction (committed when it returns, rolled back when it raises).

    This is the CLI's transaction boundary, so it is where a deadlock or serialization failure is
    retried: the whole transaction again, on a fresh one (the server rolled the failed one back). Only
    those: after a connection lost mid-COMMIT a write may or may not have been applied, and a command
    such as ``task create`` is not idempotent. ``retry=False`` for work with effects outside the
    database (output streamed as it is read). After the commit, what the command wrote is sealed when
    no orchestrator is there to do it.
    """
    with opened(settings, audit_key=True) as db:

        async def once() -> T:
            async with db.engine.begin() as conn:
                return await work(conn)

        async def main() -> T:
            try:
                result = (
                    await once()
                    if not retry
                    else await retry_transient(once, what="cli transaction", retry_on=is_conflict)
                )
                await _seal_pending(settings, db)
                return result
            finally:
                await db.dispose()

        return asyncio.run(main())


def run_read(settings: Settings, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run ``work`` in one read-only transaction: what ``list`` and ``show`` commands use.

    A read writes no audit event, so it needs neither the master key (no key file read, no query to
    check whose key it is) nor a seal pass afterwards: two round trips and the crypto imports fewer
    than ``run_in_transaction``. The transaction is ``READ ONLY``, so a "read" that tried to write
    would fail loudly instead of writing an event nobody MACs. Retried like any transaction: a
    read is idempotent.
    """
    with opened(settings) as db:

        async def once() -> T:
            # psycopg opens the transaction with BEGIN READ ONLY: no extra round trip.
            async with db.engine.connect() as plain:
                conn = await plain.execution_options(postgresql_readonly=True)
                async with conn.begin():
                    return await work(conn)

        async def main() -> T:
            try:
                return await retry_transient(once, what="cli read", retry_on=is_conflict)
            finally:
                await db.dispose()

        return asyncio.run(main())


def run_with_master_key(settings: Settings, work: Callable[[Database, MasterKey], Awaitable[T]]) -> T:
    """Run ``work`` with the database and the master key (after recovering an interrupted rotation).

    ``work`` opens its own transactions on ``db.engine``; the key is the database's (``opened``).
    """
    with opened(settings, audit_key=True) as db:
        key = db.audit_key
        if key is None:  # pragma: no cover - opened(audit_key=True) always sets it
            raise RuntimeError("no master key")

        async def main() -> T:
            try:
                result = await work(db, key)
                await _seal_pending(settings, db)
                return result
            finally:
                await db.dispose()

        return asyncio.run(main())
