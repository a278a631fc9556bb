"""Integrations: a company's connections to outside services; credentials live in the secret store."""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB

from company_agents.db.schema.base import created_at, in_list, metadata, updated_at, uuid_pk

INTEGRATION_STATUSES = ("active", "disabled", "error")

integrations = Table(
    "integrations",
    metadata,
    uuid_pk(),
    Column("company_id", Uuid, ForeignKey("companies.id", ondelete="RESTRICT"), nullable=False),
    Column("kind", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("config", JSONB, nullable=False, server_default="{}"),
    Column("scopes", JSONB, nullable=False, server_default="[]"),
    Column("secret_id", Uuid, nullable=True),
    Column("status", Text, nullable=False, server_default="active"),
    created_at(),
    updated_at(),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("company_id", "name"),
    # The credential must belong to the same company.
    ForeignKeyConstraint(
        ["company_id", "secret_id"],
        ["secrets.company_id", "secrets.id"],
        ondelete="RESTRICT",
        name="fk_integrations_secret",
    ),
    CheckConstraint(in_list("status", INTEGRATION_STATUSES), name="status"),
    CheckConstraint("kind ~ '^[a-z][a-z0-9_-]{0,31}$'", name="kind_format"),
)
