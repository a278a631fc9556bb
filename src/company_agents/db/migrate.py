"""Applying and inspecting migrations (Alembic, revisions 0001, 0002, … shipped in the package)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from company_agents.db import locks
from company_agents.db.revision import MigrationStatus as MigrationStatus

# Every process that migrates takes this advisory lock first.
MIGRATION_LOCK_KEY = locks.MIGRATION

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    head = script_directory().get_current_head()
    if head is None:
        raise RuntimeError("no migrations shipped")
    return head


def migration_status(engine: Engine) -> MigrationStatus:
    scripts = script_directory()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    head = head_revision()
    # walk_revisions yields head first; pending is oldest first.
    pending: list[str] = []
    for rev in scripts.walk_revisions(base="base", head="heads"):
        if rev.revision == current:
            break
        pending.append(rev.revision)
    pending.reverse()
    return MigrationStatus(current=current, head=head, pending=pending)


def upgrade(engine: Engine, revision: str = "head") -> MigrationStatus:
    """Apply pending migrations up to ``revision`` under the advisory lock; return the new status."""
    with engine.connect() as conn:
        command.upgrade(alembic_config(conn), revision)
        conn.commit()
    return migration_status(engine)
