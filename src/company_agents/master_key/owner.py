"""One master key per database: the database records the key that owns it (``database_key``), and a
process holding another key is refused before it writes anything the key signs or encrypts.

The record is made the first time a key is used with the database (``bind_master_key``: ``up`` and
every CLI command that loads the key), under an exclusive advisory lock, so two new homes attaching at
once cannot each record a key of their own; a home attached to a database that already has a record
never creates a key file. ``secrets rotate-master-key`` moves the record in its re-encrypting
transaction (``master_key.rotation``), and running orchestrators re-read it on every heartbeat
(``runtime.registry``).
"""

from __future__ import annotations

import socket
from typing import Any, LiteralString

import psycopg

from company_agents.db import locks
from company_agents.db.database import Database
from company_agents.errors import MasterKeyError, MasterKeyMismatch
from company_agents.master_key.key import MasterKey, load_master_key, master_key_location, master_key_status
from company_agents.settings import Settings

RECORDED_KEY_SQL: LiteralString = "SELECT key_id FROM database_key WHERE id = 1"
RECORD_KEY_SQL: LiteralString = """
INSERT INTO database_key (id, key_id, recorded_by) VALUES (1, %(key_id)s, %(host)s)
ON CONFLICT (id) DO NOTHING
"""
TABLE_READY_SQL: LiteralString = "SELECT to_regclass('database_key') IS NOT NULL"


def _place(source: str) -> str:
    if source.startswith("env://"):
        return f"${source.removeprefix('env://')}"
    return source.removeprefix("file://")


def owner_mismatch(master_key: MasterKey, owner_key_id: str) -> MasterKeyMismatch:
    """The one-line refusal: both fingerprints and the fix."""
    return MasterKeyMismatch(
        f"master key {master_key.key_id} ({master_key.source}) is not this database's master key "
        f"{owner_key_id}; fix: copy key {owner_key_id} from a host that uses this database to "
        f"{_place(master_key.source)}, or point MASTER_KEY_SOURCE at it",
        key_id=master_key.key_id,
        database_key_id=owner_key_id,
    )


def owner_missing(settings: Settings, owner_key_id: str) -> MasterKeyError:
    kind, where = master_key_location(settings)
    place = where if kind == "file" else f"${where}"
    return MasterKeyError(
        f"this database belongs to master key {owner_key_id} and {place} holds no key (a home attached "
        f"to it never makes its own); fix: copy key {owner_key_id} from a host that uses this database "
        f"to {place}, or point MASTER_KEY_SOURCE at it",
        database_key_id=owner_key_id,
    )


def recorded_key_id(conn: psycopg.Connection[Any]) -> str | None:
    """The key id the database records as its owner, or None (none yet, or a schema before 0015)."""
    ready = conn.execute(TABLE_READY_SQL).fetchone()
    if not ready or not ready[0]:
        return None
    row = conn.execute(RECORDED_KEY_SQL).fetchone()
    return None if row is None else str(row[0])


def _load_for_owner(settings: Settings, owner_key_id: str) -> MasterKey:
    if master_key_status(settings) == "missing":
        raise owner_missing(settings, owner_key_id)
    key = load_master_key(settings, create=False)
    if key.key_id != owner_key_id:
        raise owner_mismatch(key, owner_key_id)
    return key


def bind_master_key(settings: Settings, db: Database) -> MasterKey:
    """Load this process's master key and make sure the database belongs to it.

    The database's record decides: with one, the key must exist and match (a missing key file is never
    created); without one, the key is loaded (created on first start) and recorded. Raises
    ``MasterKeyMismatch`` or ``MasterKeyError`` with the fix in one line.
    """
    with db.connect(autocommit=False) as conn:
        ready = conn.execute(TABLE_READY_SQL).fetchone()
        if not ready or not ready[0]:  # pragma: no cover - callers migrate (or refuse) first
            return load_master_key(settings, create=True)
        # Shared with secret writers: a rotation in progress finishes first, so we read its result.
        conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (locks.SECRETS_KEY,))
        row = conn.execute(RECORDED_KEY_SQL).fetchone()
        if row is not None:
            conn.rollback()
            return _load_for_owner(settings, str(row[0]))
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (locks.DATABASE_KEY,))
        row = conn.execute(RECORDED_KEY_SQL).fetchone()  # again, under the lock: someone may have won
        if row is not None:
            conn.rollback()
            return _load_for_owner(settings, str(row[0]))
        key = load_master_key(settings, create=True)
        conn.execute(RECORD_KEY_SQL, {"key_id": key.key_id, "host": socket.gethostname()})
        conn.commit()
        return key


def check_owner(db: Database, master_key: MasterKey) -> None:
    """Refuse ``master_key`` unless the database records it as its key (or records none yet)."""
    with db.connect() as conn:
        owner = recorded_key_id(conn)
    if owner is not None and owner != master_key.key_id:
        raise owner_mismatch(master_key, owner)
