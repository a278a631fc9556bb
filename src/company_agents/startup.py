"""Bringing a process up: the home, the database, the schema and the master key, in that order."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from company_agents.db.database import Database, open_database
from company_agents.db.embedded import load_embedded_package
from company_agents.db.revision import MigrationStatus, at_head
from company_agents.errors import SchemaOutOfDate
from company_agents.home import ensure_home
from company_agents.master_key import MasterKey, master_key_status
from company_agents.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Instance:
    settings: Settings
    db: Database
    schema: MigrationStatus
    master_key: MasterKey


def database_has_secrets(db: Database) -> bool:
    with db.connect() as conn:
        exists = conn.execute("SELECT to_regclass('secrets') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            return False
        row = conn.execute("SELECT EXISTS (SELECT 1 FROM secrets)").fetchone()
        return bool(row and row[0])


def ensure_schema(db: Database) -> MigrationStatus:
    """Migrate a database we own (embedded, or auto-migrate configured); refuse a stale one elsewhere.

    A database at this package's head costs no more than the revision ``open_database`` read; Alembic
    is loaded only to migrate or to say what is pending.
    """
    status = at_head(db.schema_revision)
    if status is not None:
        return status
    from company_agents.db.migrate import migration_status, upgrade

    engine = db.sync_engine()
    try:
        if db.is_embedded or db.settings.auto_migrate:
            return upgrade(engine)
        status = migration_status(engine)
    finally:
        engine.dispose()
    if not status.up_to_date:
        raise SchemaOutOfDate(
            f"the database schema is at {status.current or 'nothing'} but this version needs {status.head} "
            f"({len(status.pending)} pending); run `company-agents db migrate` "
            "(or set COMPANY_AGENTS_AUTO_MIGRATE=1)"
        )
    return status


def _open_meanwhile(settings: Settings, meanwhile: Callable[[], object]) -> Database:
    """``open_database`` in a worker thread while ``meanwhile`` runs here.

    Starting the embedded server is mostly waiting on ``initdb`` and ``pg_ctl``; a caller fills that
    wait with its imports. Only the imports run here, the opening keeps its order and its errors.
    """
    from concurrent.futures import ThreadPoolExecutor

    # The package's import happens here, before the thread: the two threads then import nothing in
    # common, so neither can wait on a module lock the other holds.
    load_embedded_package()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="open-database") as pool:
        opening = pool.submit(open_database, settings)
        try:
            meanwhile()
        except Exception:  # only a head start: the code that needs the module imports it again
            log.debug("preloading failed", exc_info=True)
        return opening.result()


@contextmanager
def instance(settings: Settings, *, meanwhile: Callable[[], object] | None = None) -> Iterator[Instance]:
    """Open everything a long-lived process needs; release the database on exit. ``meanwhile`` runs
    while the database opens (``_open_meanwhile``)."""
    # Imported here: ``ensure_schema`` is on every CLI read's path, and these pull in the secret
    # store, the adapters and the crypto stack.
    from company_agents.master_key.owner import bind_master_key
    from company_agents.master_key.rotation import recover_pending_rotation

    ensure_home(settings)
    master_key_status(settings)  # refuse an unsafe key before touching the database
    db = open_database(settings) if meanwhile is None else _open_meanwhile(settings, meanwhile)
    try:
        schema = ensure_schema(db)
        # A master-key rotation a crash interrupted is finished (or undone) before the key is read.
        recover_pending_rotation(settings, db)
        # The database's record of its key decides (one key per database; docs/deployment.md).
        key = bind_master_key(settings, db)
        db.audit_key = key  # every event this process writes gets its MAC (audit.mac)
        yield Instance(settings=settings, db=db, schema=schema, master_key=key)
    finally:
        db.close()
