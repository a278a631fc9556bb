"""API tokens for ``/v1`` (docs/api.md): a person's or a script's bearer token, never an agent's.

Only the SHA-256 of a token is stored (it carries 128 random bits, so no salt or KDF); ``hint`` is the
token's first characters, enough to tell tokens apart in ``token list`` and useless to an attacker.
Rotation replaces the hash in place, so the id (which request logs name) stays the same.
"""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, DateTime, ForeignKey, Table, Text, Uuid
from sqlalchemy.dialects.postgresql import ARRAY

from company_agents.db.schema.base import created_at, in_list, metadata, uuid_pk

TOKEN_ENVS = ("dev", "prod")

api_tokens = Table(
    "api_tokens",
    metadata,
    uuid_pk(),
    Column("name", Text, nullable=False),
    Column("env", Text, nullable=False),
    Column("token_hash", Text, nullable=False, unique=True),
    Column("hint", Text, nullable=False),
    Column("scopes", ARRAY(Text), nullable=False),
    # Set when a company scope restricts the token; the scope strings carry the same id.
    Column("company_id", Uuid, ForeignKey("companies.id", ondelete="CASCADE"), nullable=True),
    Column("created_by", Text, nullable=False),
    created_at(),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    Column("rotated_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    CheckConstraint(in_list("env", TOKEN_ENVS), name="env"),
    CheckConstraint("length(name) BETWEEN 1 AND 200", name="name_length"),
    CheckConstraint("cardinality(scopes) >= 1", name="scopes_not_empty"),
)
