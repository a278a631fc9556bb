"""``db import``: check the whole archive, then load it in one transaction that proves what it loaded.

The order of work, and why:

1. The archive is read end to end and every table's row count and sha256 compared with the manifest
   before the target is touched, so a damaged file never writes anything.
2. One transaction then does everything else: clearing the target (with ``--replace``), migrating it
   to the archive's revision, loading (keys, indexes and foreign keys set aside and rebuilt after, see
   ``constraints``), fixing sequences, and copying every table out again to compare with the manifest.
   PostgreSQL DDL is transactional, so if any step fails — including that final comparison — the
   target is left exactly as it was, old data included.
3. After the commit the schema is brought up to this version's head, as ``up`` would.

Clearing a target: the history tables refuse DELETE and TRUNCATE by trigger, so ``--replace`` does not
empty tables; it downgrades the schema to nothing (DROP TABLE, which the triggers do not cover) and
migrates it up again, inside the same transaction. Tables that are not ours are left alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from dataclasses import replace as with_fields
from pathlib import Path
from typing import cast

from psycopg import sql
from sqlalchemy import Connection, text

from company_agents.db.database import Database
from company_agents.db.locks import MIGRATION as MIGRATION_LOCK_KEY
from company_agents.db.revision import HEAD_REVISION
from company_agents.errors import (
    ArchiveError,
    ImportVerificationFailed,
    OrchestratorRunning,
    SchemaOutOfDate,
    TargetNotEmpty,
)
from company_agents.transfer import constraints
from company_agents.transfer.archive import ArchiveReader, Manifest, StreamDigest
from company_agents.transfer.progress import ProgressFn
from company_agents.transfer.tables import (
    BOOKKEEPING_TABLES,
    Conn,
    apply_session_settings,
    copy_in_sql,
    copy_out_sql,
    existing_tables,
    host_tables,
    orchestrator_sessions,
    sequences,
    server_encoding,
    table_shape,
    tables_with_rows,
    transferred_tables,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImportResult:
    """What an import loaded, and the schema revision the target ended at."""

    source_revision: str
    revision: str
    tables: dict[str, int]
    replaced: bool

    @property
    def total_rows(self) -> int:
        return sum(self.tables.values())

    def to_dict(self) -> dict[str, object]:
        return {
            "source_revision": self.source_revision,
            "revision": self.revision,
            # A list, not a dict: table names are data, and --json camelCases dict keys.
            "tables": [{"name": name, "rows": rows} for name, rows in self.tables.items()],
            "total_rows": self.total_rows,
            "replaced": self.replaced,
        }


def _our_tables(manifest: Manifest) -> list[str]:
    names = [t.name for t in manifest.tables]
    return names + [n for n in transferred_tables() if n not in names]


def _with_data(conn: Conn, names: list[str]) -> list[str]:
    return [n for n in tables_with_rows(conn, names) if n not in BOOKKEEPING_TABLES]


def _known(revision: str) -> bool:
    # Alembic is imported where it is used: this package is imported by `backup`, which `up` loads
    # for its scheduled backups, and Alembic (with Mako) is a large part of `up`'s import time.
    from alembic.util import CommandError

    from company_agents.db.migrate import script_directory

    try:
        return script_directory().get_revision(revision) is not None
    except CommandError:
        return False


def check_revision_known(revision: str) -> None:
    if not _known(revision):
        raise ArchiveError(
            f"the archive is at schema revision {revision}, which this version of company-agents does "
            "not know: import it with the version that made it, or a newer one"
        )


def check_target(conn: Conn, manifest: Manifest, *, replace: bool) -> list[str]:
    """Refuse a target an orchestrator uses, or with data unless ``replace``; return the full tables."""
    running = orchestrator_sessions(conn)
    if running:
        raise OrchestratorRunning(
            f"an orchestrator is using the target database ({running} connections from "
            "`company-agents up`); stop it first"
        )
    encoding = server_encoding(conn)
    if encoding != "UTF8":
        raise ArchiveError(f"the target database's encoding is {encoding}; it must be UTF8")
    full = _with_data(conn, _our_tables(manifest))
    if full and not replace:
        raise TargetNotEmpty(
            f"the target database already holds data (in {', '.join(full)}); "
            "import into an empty database, or pass --replace to overwrite it"
        )
    return full


def import_archive(
    db: Database, path: Path, *, replace: bool = False, progress: ProgressFn | None = None
) -> ImportResult:
    """Import the archive at ``path`` into ``db``; see the module docstring for the guarantees."""
    with ArchiveReader(path) as archive:
        manifest = archive.manifest
        check_revision_known(manifest.schema_revision)
        with db.connect() as conn:  # fail fast, before reading a large archive
            check_target(conn, manifest, replace=replace)
        archive.verify(progress)
        engine = db.sync_engine()
        try:
            with engine.connect() as sa_conn:
                with sa_conn.begin():
                    loaded = _load(sa_conn, archive, replace=replace, progress=progress)
            revision = manifest.schema_revision
            if revision != HEAD_REVISION:
                from company_agents.db.migrate import upgrade as upgrade_to_head

                revision = upgrade_to_head(engine).current or revision
        finally:
            engine.dispose()
    log.info(
        "database imported",
        extra={"action": "db_import", "path": str(path), "rows": sum(loaded.values()), "replace": replace},
    )
    return ImportResult(
        source_revision=manifest.schema_revision, revision=revision, tables=loaded, replaced=replace
    )


def _load(
    sa_conn: Connection, archive: ArchiveReader, *, replace: bool, progress: ProgressFn | None
) -> dict[str, int]:
    manifest = archive.manifest
    conn = cast(Conn, sa_conn.connection.driver_connection)
    # Other migrators wait for us; Alembic takes the same lock again (it is re-entrant) if it runs.
    sa_conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    apply_session_settings(conn)
    full = check_target(conn, manifest, replace=replace)  # again, now under the lock
    _prepare_schema(sa_conn, manifest.schema_revision, reset=bool(full))
    names = [t.name for t in manifest.tables]
    for name in names:
        conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(name)))
    if _with_data(conn, names):  # someone wrote between the check and the lock
        raise TargetNotEmpty("the target database received data while the import started; try again")
    for name in existing_tables(conn, [n for n in BOOKKEEPING_TABLES if n in names]):
        # The archive's record wins: its secrets and seals are made with the key it names.
        conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(name)))
    _check_shapes(conn, manifest)
    # Dependency order is kept for readability of failures, but it is not what makes the load legal:
    # foreign keys are set aside and re-checked after (cycles like teams ↔ agents need that anyway).
    aside = constraints.set_aside(conn, names)
    loaded: dict[str, int] = {}
    for entry in manifest.tables:
        digest = StreamDigest()
        with conn.cursor().copy(copy_in_sql(entry.name, entry.columns)) as copy:
            for block in archive.chunks(entry):
                digest.update(block)
                copy.write(block)
                if progress is not None:
                    progress("load", entry.name, digest.rows, entry.rows)
        if not digest.matches(entry):  # the file changed since it was checked
            raise ArchiveError(f"{archive.path.name} changed while it was being imported ({entry.name})")
        loaded[entry.name] = digest.rows
    conn.execute("SET LOCAL maintenance_work_mem = '128MB'")  # index builds sort in memory
    constraints.restore(conn, aside)
    _restore_sequences(conn, manifest)
    _verify(conn, manifest, progress)
    return loaded


def _prepare_schema(sa_conn: Connection, revision: str, *, reset: bool) -> None:
    """Bring the target to exactly ``revision``, from nothing when it held data (``--replace``)."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    from company_agents.db.migrate import alembic_config

    current = MigrationContext.configure(sa_conn).get_current_revision()
    if current is not None and not _known(current):
        raise SchemaOutOfDate(
            f"the target database is at schema revision {current}, made by a newer company-agents; "
            "import with that version"
        )
    cfg = alembic_config(sa_conn)
    kept: list[str] = []
    if current is not None and (reset or current != revision):
        kept = _set_host_rows_aside(sa_conn)
        # Going through base drops every table of ours, history tables included (DROP, not DELETE).
        command.downgrade(cfg, "base")
        current = None
    if current != revision:
        command.upgrade(cfg, revision)
    _put_host_rows_back(sa_conn, kept)


def _set_host_rows_aside(sa_conn: Connection) -> list[str]:
    """Copy the host tables (orchestrators, backups) to temporary tables before the schema is dropped:
    the data is replaced, but the backup files on the hosts and the running orchestrators are not."""
    conn = cast(Conn, sa_conn.connection.driver_connection)
    kept = existing_tables(conn, host_tables())
    for name in kept:
        conn.execute(
            sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS TABLE {}").format(
                sql.Identifier(f"kept_{name}"), sql.Identifier(name)
            )
        )
    return kept


def _put_host_rows_back(sa_conn: Connection, kept: list[str]) -> None:
    conn = cast(Conn, sa_conn.connection.driver_connection)
    for name in existing_tables(conn, kept):  # an older revision may not have the table
        shape = table_shape(conn, name)
        saved = table_shape(conn, f"pg_temp.kept_{name}")
        if shape is None or saved is None:  # pragma: no cover - both were just made
            continue
        columns = [c for c in shape.columns if c in saved.columns]
        cols = sql.SQL(", ").join(map(sql.Identifier, columns))
        conn.execute(
            sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(
                sql.Identifier(name), cols, cols, sql.Identifier(f"kept_{name}")
            )
        )


def _check_shapes(conn: Conn, manifest: Manifest) -> None:
    for entry in manifest.tables:
        shape = table_shape(conn, entry.name)
        if shape is None or set(shape.columns) != set(entry.columns):
            raise ArchiveError(
                f"table {entry.name} at revision {manifest.schema_revision} does not have the columns the "
                "archive lists; the archive does not match its schema revision"
            )


def _restore_sequences(conn: Conn, manifest: Manifest) -> None:
    """Set every identity sequence to where the source had it (never below the largest loaded value).

    COPY writes identity columns without drawing from their sequences, so without this the next insert
    would collide with a loaded row.
    """
    states = {(s.table, s.column): s for s in manifest.sequences}
    for table, column, seq in sequences(conn, [t.name for t in manifest.tables]):
        query = sql.SQL("SELECT max({}) FROM {}").format(sql.Identifier(column), sql.Identifier(table))
        row = conn.execute(query).fetchone()
        largest = None if row is None or row[0] is None else int(str(row[0]))
        state = states.get((table, column))
        value, called = (state.last_value, state.is_called) if state else (1, False)
        if largest is not None and (largest > value or (largest == value and not called)):
            value, called = largest, True
        conn.execute("SELECT setval(%s::regclass, %s, %s)", (seq.as_string(conn), value, called))


def _verify(conn: Conn, manifest: Manifest, progress: ProgressFn | None) -> None:
    """Copy every table out again, as the export did, and require the manifest's counts and checksums."""
    for entry in manifest.tables:
        shape = table_shape(conn, entry.name)
        if shape is None:  # pragma: no cover - checked before loading
            raise ImportVerificationFailed(f"table {entry.name} vanished during the import")
        shape = with_fields(shape, columns=entry.columns)  # the archive's column order
        digest = StreamDigest()
        buffer = bytearray()
        with conn.cursor().copy(copy_out_sql(shape)) as copy:
            for block in copy:
                buffer += block
                if len(buffer) >= 1 << 20:
                    digest.update(buffer)
                    buffer.clear()
                    if progress is not None:
                        progress("verify", entry.name, digest.rows, entry.rows)
        digest.update(buffer)
        if progress is not None:
            progress("verify", entry.name, digest.rows, entry.rows)
        if not digest.matches(entry):
            raise ImportVerificationFailed(
                f"table {entry.name} reads back as {digest.rows} rows (sha256 {digest.sha256[:12]}…) but the "
                f"archive holds {entry.rows} (sha256 {entry.sha256[:12]}…); nothing was committed"
            )
