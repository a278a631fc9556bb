"""Secrets: company-scoped credentials, AES-256-GCM ciphertext with a fresh nonce per write."""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    LargeBinary,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)

from company_agents.db.schema.base import created_at, metadata, updated_at, uuid_pk

secrets = Table(
    "secrets",
    metadata,
    uuid_pk(),
    Column("company_id", Uuid, ForeignKey("companies.id", ondelete="RESTRICT"), nullable=False),
    Column("name", Text, nullable=False),
    Column("value", LargeBinary, nullable=False),
    Column("nonce", LargeBinary, nullable=False),
    # Identifies (without revealing) the master key this value is encrypted under.
    Column("key_id", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    created_at(),
    updated_at(),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("company_id", "name"),
    UniqueConstraint("company_id", "id"),
    CheckConstraint("octet_length(nonce) = 12", name="nonce_length"),
    CheckConstraint("name ~ '^[A-Za-z_][A-Za-z0-9_.-]{0,127}$'", name="name_format"),
)
