"""``db export``: one consistent snapshot of every table of ours, streamed with COPY into an archive."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from psycopg import IsolationLevel

from company_agents.db.database import Database
from company_agents.db.revision import HEAD_REVISION
from company_agents.errors import DatabaseError, SchemaOutOfDate
from company_agents.transfer.archive import ArchiveWriter, Manifest, SequenceEntry
from company_agents.transfer.progress import ProgressFn
from company_agents.transfer.tables import (
    Conn,
    apply_session_settings,
    copy_out_sql,
    sequence_state,
    sequences,
    table_shape,
    transferred_tables,
)

log = logging.getLogger(__name__)


@contextmanager
def snapshot(db: Database) -> Iterator[Conn]:
    """A read-only REPEATABLE READ transaction: every query in it sees the same committed state.

    It takes no locks beyond ACCESS SHARE, so a running orchestrator keeps writing meanwhile.
    """
    conn = db.connect(autocommit=False)
    try:
        conn.isolation_level = IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        apply_session_settings(conn)
        yield conn
    finally:
        conn.rollback()
        conn.close()


def schema_revision(conn: Conn) -> str | None:
    if conn.execute("SELECT to_regclass('alembic_version')").fetchone() in (None, (None,)):
        return None
    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return str(row[0]) if row else None


def write_export(conn: Conn, path: Path, *, progress: ProgressFn | None = None) -> Manifest:
    """Write every table of ours, read in ``conn``'s snapshot, to the archive at ``path``."""
    revision = schema_revision(conn)
    # The package's head without Alembic (tests/unit/test_schema_revision.py keeps the two equal):
    # Alembic and its script walk would be loaded by `up` too, for its scheduled backups.
    head = HEAD_REVISION
    if revision != head:
        raise SchemaOutOfDate(
            f"the database schema is at {revision or 'nothing'}, this version exports {head}; "
            "run `company-agents db migrate` first"
        )
    # Dependency order (referenced tables first), the order import loads in.
    names = transferred_tables()
    writer = ArchiveWriter(path)
    try:
        for name in names:
            shape = table_shape(conn, name)
            if shape is None:
                raise DatabaseError(f"table {name} is missing although the schema is at {revision}")
            sink = writer.add_table(name)
            reported = 0
            with conn.cursor().copy(copy_out_sql(shape)) as copy:
                for block in copy:
                    sink.write(block)
                    # Report every ~1MB of spooled text, not every row.
                    if progress is not None and sink.digest.rows != reported:
                        reported = sink.digest.rows
                        progress("export", name, reported, None)
            entry = writer.finish_table(sink, name, shape.columns, shape.order_by)
            if progress is not None:
                progress("export", name, entry.rows, entry.rows)
        seqs = tuple(
            SequenceEntry(table, column, *sequence_state(conn, seq))
            for table, column, seq in sequences(conn, names)
        )
        row = conn.execute("SELECT current_setting('server_version'), current_setting('server_version_num')")
        version, version_num = row.fetchone() or ("", "0")
        manifest = writer.commit(
            schema_revision=head,
            server_version=str(version),
            server_version_num=int(str(version_num)),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            sequences=seqs,
        )
    except BaseException:
        writer.abort()
        raise
    log.info(
        "database exported",
        extra={"action": "db_export", "path": str(path), "rows": manifest.total_rows},
    )
    return manifest


def export_database(db: Database, path: Path, *, progress: ProgressFn | None = None) -> Manifest:
    """Export the whole database to ``path`` (written atomically: a partial file never appears)."""
    with snapshot(db) as conn:
        return write_export(conn, path, progress=progress)
