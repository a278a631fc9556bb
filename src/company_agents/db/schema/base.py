"""The one ``MetaData`` every domain module adds its tables to, and shared column helpers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, DateTime, MetaData, Uuid, text

# Stable constraint names: migrations and error mapping refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


def uuid_pk() -> Column[Any]:
    return Column("id", Uuid, primary_key=True, server_default=text("gen_random_uuid()"))


def created_at() -> Column[Any]:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()"))


def updated_at() -> Column[Any]:
    return Column("updated_at", DateTime(timezone=True), nullable=False, server_default=text("now()"))


def in_list(column: str, values: tuple[str, ...]) -> str:
    """SQL text for a CHECK that ``column`` holds one of ``values``."""
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"
