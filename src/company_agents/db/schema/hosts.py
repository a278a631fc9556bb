"""What the database knows about the hosts that share it (docs/deployment.md): the master key that owns
it, the orchestrators running on it, and the backups each host holds.

``database_key`` is data: it travels with ``db export``/``db import`` and backups, because the secrets
and seals it describes travel too. ``orchestrators`` and ``backups`` describe processes and files on
particular hosts, not the data: they are marked ``info={"transfer": False}``, so an export leaves them
out and an import or restore leaves the target's rows alone (a restore must not forget the backups
taken after the one it restores).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    SmallInteger,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from company_agents.db.schema.base import created_at, metadata, uuid_pk

# One row at most: the key id (``MasterKey.key_id``, a fingerprint, never the key) of the master key
# every secret, MAC and seal of this database is made with. Written the first time a key is used with
# the database; moved only by ``secrets rotate-master-key``, in the transaction that re-encrypts.
database_key = Table(
    "database_key",
    metadata,
    Column("id", SmallInteger, primary_key=True, server_default=text("1")),
    Column("key_id", Text, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    # hostname of the process that recorded it (first use, or the rotation).
    Column("recorded_by", Text, nullable=False, server_default=""),
    CheckConstraint("id = 1", name="one_row"),
)

# One row per running `company-agents up`; times from the database clock. A row whose heartbeat is
# older than three of its own intervals is shown as gone; one gone for a day is pruned.
orchestrators = Table(
    "orchestrators",
    metadata,
    uuid_pk(),
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("holder", Text, nullable=False),  # hostname:pid, as runs and leases name it
    Column("version", Text, nullable=False),
    Column("schema_revision", Text, nullable=False),
    Column("isolation", Text, nullable=False),
    Column("key_id", Text, nullable=False),
    Column("api_url", Text, nullable=False, server_default=""),
    Column("heartbeat_seconds", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("last_heartbeat", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    CheckConstraint("heartbeat_seconds > 0", name="heartbeat_positive"),
    info={"transfer": False},
)
Index("ix_orchestrators_host", orchestrators.c.host)

# Every backup file a host wrote, so any host can list them all (and retention decides from here). A
# host only ever deletes its own files; ``deleted_at`` keeps the record of what retention removed.
backups = Table(
    "backups",
    metadata,
    uuid_pk(),
    created_at(),
    Column("host", Text, nullable=False),
    Column("path", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("contents", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("includes_secrets", Boolean, nullable=False),
    Column("scheduled", Boolean, nullable=False, server_default=text("false")),
    Column("schema_revision", Text, nullable=False),
    Column("deleted_at", DateTime(timezone=True), nullable=True),
    info={"transfer": False},
)
Index("ix_backups_host_path", backups.c.host, backups.c.path, unique=True)
