"""Setting keys, indexes and foreign keys aside while a bulk load runs, and putting them back.

Loading into indexed tables with live foreign keys costs an index insertion per index and a lookup
per foreign key for every row; building each index once by sorting, and checking each foreign key
with one join, is several times faster (pg_restore orders its work the same way). It all happens
inside the import's transaction: nobody sees the tables without their constraints, and re-adding a
constraint checks every loaded row against it, so nothing is skipped. The definitions come from
``pg_get_constraintdef`` / ``pg_get_indexdef``, so what comes back is exactly what the migrations made,
names included. Check constraints and triggers stay in place: they are cheap per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import LiteralString

from psycopg import sql

from company_agents.transfer.tables import Conn

# Primary keys and unique constraints of the loaded tables, and every foreign key from or to them.
CONSTRAINTS_SQL: LiteralString = """
SELECT con.conname, src.relname, con.contype, pg_get_constraintdef(con.oid)
FROM pg_constraint con
JOIN pg_class src ON src.oid = con.conrelid
LEFT JOIN pg_class dst ON dst.oid = con.confrelid
WHERE src.relnamespace = current_schema()::regnamespace
  AND ((con.contype IN ('p', 'u') AND src.relname = ANY (%(tables)s))
       OR (con.contype = 'f' AND (src.relname = ANY (%(tables)s) OR dst.relname = ANY (%(tables)s))))
ORDER BY src.relname, con.conname
"""

# Indexes that no constraint owns (those come back with their constraint).
SECONDARY_INDEXES_SQL: LiteralString = """
SELECT ic.relname, t.relname, pg_get_indexdef(i.indexrelid)
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
WHERE t.relnamespace = current_schema()::regnamespace AND t.relname = ANY (%(tables)s)
  AND NOT EXISTS (
      SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.contype IN ('p', 'u', 'x')
  )
ORDER BY t.relname, ic.relname
"""


@dataclass(frozen=True)
class SetAside:
    """What was dropped for the load, in the order it must come back."""

    keys: list[tuple[str, str, str]]  # (table, constraint, definition)
    indexes: list[tuple[str, str]]  # (index, CREATE INDEX statement)
    foreign_keys: list[tuple[str, str, str]]


def set_aside(conn: Conn, tables: list[str]) -> SetAside:
    """Drop the loaded tables' keys, secondary indexes and foreign keys; return how to rebuild them."""
    keys: list[tuple[str, str, str]] = []
    fks: list[tuple[str, str, str]] = []
    for name, table, kind, definition in conn.execute(CONSTRAINTS_SQL, {"tables": tables}):
        (fks if kind == "f" else keys).append((str(table), str(name), str(definition)))
    indexes = [(str(n), str(d)) for n, _t, d in conn.execute(SECONDARY_INDEXES_SQL, {"tables": tables})]
    # Foreign keys first: a key cannot be dropped while a foreign key depends on its index.
    for table, name, _ in fks + keys:
        conn.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(sql.Identifier(table), sql.Identifier(name))
        )
    for name, _ in indexes:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
    return SetAside(keys=keys, indexes=indexes, foreign_keys=fks)


def restore(conn: Conn, aside: SetAside) -> None:
    """Rebuild keys, then indexes, then foreign keys (which need the keys), checking every row."""
    for table, name, definition in aside.keys:
        _add_constraint(conn, table, name, definition)
    for _, statement in aside.indexes:
        conn.execute(sql.SQL(statement))  # from pg_get_indexdef, not user input
    for table, name, definition in aside.foreign_keys:
        _add_constraint(conn, table, name, definition)


def _add_constraint(conn: Conn, table: str, name: str, definition: str) -> None:
    conn.execute(
        sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ").format(sql.Identifier(table), sql.Identifier(name))
        + sql.SQL(definition)  # from pg_get_constraintdef, not user input
    )
