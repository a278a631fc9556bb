"""The ER diagram (Mermaid), generated from the table metadata into ``docs/er-diagram.md``."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Column, MetaData, Table, UniqueConstraint

from company_agents.db.schema import metadata as default_metadata

HEADER = """# Entity-relationship diagram

Generated from the SQLAlchemy metadata by `company-agents db diagram`; a test fails when it is stale.
Do not edit by hand.

"""


def _type_name(column: Column[object]) -> str:
    name = type(column.type).__name__.lower()
    return {"largebinary": "bytea", "datetime": "timestamptz", "uuid": "uuid"}.get(name, name)


def _keys(table: Table, column: Column[object]) -> str:
    keys = []
    if column.primary_key:
        keys.append("PK")
    if column.foreign_keys:
        keys.append("FK")
    unique = column.unique or any(
        len(c.columns) == 1 and column.name in c.columns
        for c in table.constraints
        if isinstance(c, UniqueConstraint)
    )
    if unique and not column.primary_key:
        keys.append("UK")
    return ",".join(keys)


def render_mermaid(metadata: MetaData = default_metadata) -> str:
    lines = ["```mermaid", "erDiagram"]
    tables = sorted(metadata.tables.values(), key=lambda t: t.name)
    for table in tables:
        lines.append(f"    {table.name} {{")
        for column in table.columns:
            keys = _keys(table, column)
            null = "" if column.nullable else ' "not null"'
            lines.append(f"        {_type_name(column)} {column.name}{(' ' + keys) if keys else ''}{null}")
        lines.append("    }")
    relations = set()
    for table in tables:
        for fk in table.foreign_key_constraints:
            child_cols = [c.name for c in fk.columns]
            optional = any(table.c[c].nullable for c in child_cols)
            parent = fk.referred_table.name
            cardinality = "|o--o{" if optional else "||--o{"
            label = ", ".join(c for c in child_cols if c != "company_id" or len(child_cols) == 1)
            relations.add(f'    {parent} {cardinality} {table.name} : "{label}"')
    lines.extend(sorted(relations))
    lines.append("```")
    return HEADER + "\n".join(lines) + "\n"


def diagram_path(root: Path) -> Path:
    return root / "docs" / "er-diagram.md"


def write_diagram(path: Path) -> bool:
    """Write the diagram; True when the file changed."""
    text = render_mermaid()
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return True
