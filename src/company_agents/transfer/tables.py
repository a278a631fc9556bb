"""What export and import ask the catalog: table shapes, sequences, foreign keys, who is connected.

Everything here reads the connection's current schema (``public`` unless ``search_path`` says
otherwise), the one our migrations create tables in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, LiteralString

import psycopg
from psycopg import sql

from company_agents.db.database import ORCHESTRATOR_APP_NAME
from company_agents.db.schema import metadata

Conn = psycopg.Connection[Any]

# COPY text output depends on these; fixing them makes the same rows produce the same bytes on every
# server and session (timestamps in UTC, ISO dates, hex bytea, shortest exact floats).
SESSION_SETTINGS: tuple[LiteralString, ...] = (
    "SET LOCAL TimeZone = 'UTC'",
    "SET LOCAL DateStyle = 'ISO, YMD'",
    "SET LOCAL IntervalStyle = 'postgres'",
    "SET LOCAL extra_float_digits = 1",
    "SET LOCAL bytea_output = 'hex'",
    "SET LOCAL standard_conforming_strings = on",
    "SET LOCAL client_encoding = 'UTF8'",
    # Sorting the big history tables by primary key must not spill to disk on a default 4MB work_mem.
    "SET LOCAL work_mem = '64MB'",
)

TABLE_COLUMNS_SQL: LiteralString = """
SELECT a.attname
FROM pg_attribute a
WHERE a.attrelid = to_regclass(%(table)s) AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
ORDER BY a.attnum
"""

# Collatable key columns are sorted with COLLATE "C" so text keys order the same on every server.
PRIMARY_KEY_SQL: LiteralString = """
SELECT a.attname, a.attcollation <> 0
FROM pg_index i
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
WHERE i.indrelid = to_regclass(%(table)s) AND i.indisprimary
ORDER BY array_position(i.indkey, a.attnum)
"""

SEQUENCES_SQL: LiteralString = """
SELECT c.relname, a.attname, s.nspname, s.relname
FROM pg_class c
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN LATERAL (
    SELECT n.nspname, sc.relname
    FROM pg_class sc JOIN pg_namespace n ON n.oid = sc.relnamespace
    WHERE sc.oid = pg_get_serial_sequence(quote_ident(c.relname), a.attname)::regclass
) s ON true
WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' AND c.relname = ANY (%(tables)s)
ORDER BY c.relname, a.attnum
"""

EXISTING_TABLES_SQL: LiteralString = """
SELECT relname FROM pg_class
WHERE relnamespace = current_schema()::regnamespace AND relkind = 'r' AND relname = ANY (%(tables)s)
"""

# A target holding rows only in these is still empty: the database's record of its master key is made
# the first time any command uses a key with it, and the archive brings its own (db/schema/hosts.py).
BOOKKEEPING_TABLES = ("database_key",)

ORCHESTRATORS_SQL: LiteralString = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND application_name = %(app)s AND pid <> pg_backend_pid()
"""


@dataclass(frozen=True)
class TableShape:
    """The columns COPY reads and writes, and the key that orders its rows."""

    name: str
    columns: tuple[str, ...]
    order_by: tuple[str, ...]
    collatable: tuple[bool, ...]


def transferred_tables() -> list[str]:
    """Our tables that export and import carry, in dependency order (referenced tables first).

    Tables marked ``info={"transfer": False}`` describe hosts (running orchestrators, the backup files
    each holds), not the data: they stay with the database they are in.
    """
    return [t.name for t in metadata.sorted_tables if t.info.get("transfer", True)]


def host_tables() -> list[str]:
    """The tables ``transferred_tables`` leaves out."""
    return [t.name for t in metadata.sorted_tables if not t.info.get("transfer", True)]


def apply_session_settings(conn: Conn) -> None:
    """Fix the output settings for this transaction (``SET LOCAL``: gone at commit or rollback)."""
    for statement in SESSION_SETTINGS:
        conn.execute(statement)


def table_shape(conn: Conn, name: str) -> TableShape | None:
    """The table's shape from the catalog, or None when it does not exist."""
    columns = tuple(str(r[0]) for r in conn.execute(TABLE_COLUMNS_SQL, {"table": name}))
    if not columns:
        return None
    key = conn.execute(PRIMARY_KEY_SQL, {"table": name}).fetchall()
    if key:
        order_by = tuple(str(r[0]) for r in key)
        collatable = tuple(bool(r[1]) for r in key)
    else:  # no primary key: every column, so the order (and the checksum) is still total
        order_by, collatable = columns, tuple(True for _ in columns)
    return TableShape(name=name, columns=columns, order_by=order_by, collatable=collatable)


def copy_out_sql(shape: TableShape) -> sql.Composed:
    """``COPY (SELECT … ORDER BY key) TO STDOUT``: the same rows always stream as the same bytes."""
    keys = [
        sql.SQL('{} COLLATE "C"').format(sql.Identifier(c)) if coll else sql.Identifier(c)
        for c, coll in zip(shape.order_by, shape.collatable, strict=True)
    ]
    return sql.SQL("COPY (SELECT {cols} FROM {table} ORDER BY {keys}) TO STDOUT").format(
        cols=sql.SQL(", ").join(map(sql.Identifier, shape.columns)),
        table=sql.Identifier(shape.name),
        keys=sql.SQL(", ").join(keys),
    )


def copy_in_sql(name: str, columns: tuple[str, ...]) -> sql.Composed:
    return sql.SQL("COPY {table} ({cols}) FROM STDIN").format(
        table=sql.Identifier(name), cols=sql.SQL(", ").join(map(sql.Identifier, columns))
    )


def existing_tables(conn: Conn, names: list[str]) -> list[str]:
    found = {str(r[0]) for r in conn.execute(EXISTING_TABLES_SQL, {"tables": names})}
    return [n for n in names if n in found]


def tables_with_rows(conn: Conn, names: list[str]) -> list[str]:
    """Those of ``names`` that exist and hold at least one row."""
    out = []
    for name in existing_tables(conn, names):
        query = sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(name))
        row = conn.execute(query).fetchone()
        if row and row[0]:
            out.append(name)
    return out


def sequences(conn: Conn, tables: list[str]) -> list[tuple[str, str, sql.Identifier]]:
    """``(table, column, sequence)`` for every identity or serial column of ``tables``."""
    rows = conn.execute(SEQUENCES_SQL, {"tables": tables}).fetchall()
    return [(str(t), str(c), sql.Identifier(str(ns), str(seq))) for t, c, ns, seq in rows]


def sequence_state(conn: Conn, seq: sql.Identifier) -> tuple[int, bool]:
    row = conn.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(seq)).fetchone()
    if row is None:  # pragma: no cover - a sequence always has its one row
        raise RuntimeError("sequence without state")
    return int(str(row[0])), bool(row[1])


def orchestrator_sessions(conn: Conn) -> int:
    """How many sessions of a running ``company-agents up`` use this database."""
    row = conn.execute(ORCHESTRATORS_SQL, {"app": ORCHESTRATOR_APP_NAME}).fetchone()
    return int(str(row[0])) if row else 0


def server_encoding(conn: Conn) -> str:
    row = conn.execute("SHOW server_encoding").fetchone()
    return str(row[0]) if row else ""
