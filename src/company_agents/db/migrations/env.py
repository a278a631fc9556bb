"""Alembic environment: runs every migration under a Postgres advisory lock.

The connection is handed in by ``company_agents.db.migrate`` through ``config.attributes``; there is no
URL in any ini file.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from company_agents.db.migrate import MIGRATION_LOCK_KEY
from company_agents.db.schema import metadata

config = context.config
connection = config.attributes["connection"]

context.configure(
    connection=connection,
    target_metadata=metadata,
    compare_type=True,
    compare_server_default=True,
    transaction_per_migration=False,
)

with context.begin_transaction():
    # Taken before Alembic reads alembic_version, so a second migrator waits, then sees the first's
    # committed result and has nothing left to do.
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    context.run_migrations()
