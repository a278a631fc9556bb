"""The schema revision this package needs, and the one a database is at, without Alembic.

Every CLI command checks the schema before it works. Loading Alembic and walking the migration scripts
costs more than most commands, so the check is one query against the revision this package was
shipped with; Alembic (``db.migrate``) runs only when the two differ. ``HEAD_REVISION`` is kept equal
to the newest script in ``db/migrations/versions`` (tests/unit/test_schema_revision.py checks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

HEAD_REVISION = "0023"

REVISION_SQL = "SELECT version_num FROM alembic_version"


@dataclass(frozen=True)
class MigrationStatus:
    current: str | None
    head: str
    pending: list[str]

    @property
    def up_to_date(self) -> bool:
        return not self.pending

    def to_dict(self) -> dict[str, object]:
        return {
            "current": self.current,
            "head": self.head,
            "pending": self.pending,
            "upToDate": self.up_to_date,
        }


def read_revision(conn: Any) -> str | None:
    """The revision a database is at (None: never migrated), on an autocommit psycopg connection."""
    import psycopg

    try:
        rows = conn.execute(REVISION_SQL).fetchall()
    except psycopg.errors.UndefinedTable:
        return None
    # Alembic keeps one row per head; this project's history is linear, so more than one is not ours.
    return str(rows[0][0]) if len(rows) == 1 else None


def at_head(revision: str | None) -> MigrationStatus | None:
    """The status of a database at ``revision`` when that is this package's head, else None."""
    if revision == HEAD_REVISION:
        return MigrationStatus(current=revision, head=HEAD_REVISION, pending=[])
    return None
