"""Active leases: one row per running attempt, removed on release or by the reaper.

All times come from the database clock. ``token_hash`` is the SHA-256 of the bearer token the agent
presents; the token itself is never stored.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Numeric,
    Table,
    Text,
    Uuid,
    text,
)

from company_agents.db.schema.base import metadata

leases = Table(
    "leases",
    metadata,
    # One lease per task at a time: a second claim of a leased task cannot insert.
    Column("task_id", Uuid, ForeignKey("tasks.id", ondelete="RESTRICT"), primary_key=True),
    Column("run_id", Uuid, ForeignKey("runs.id", ondelete="RESTRICT"), nullable=False),
    # Copies of the run's agent and company, for the capacity count and listings. Leases are the
    # hottest, shortest-lived rows: no foreign keys or unique indexes beyond what claims need (each
    # costs an index insert or a key-share lock per claim); the run row carries the integrity.
    Column("agent_id", Uuid, nullable=False),
    Column("company_id", Uuid, nullable=False),
    Column("fencing_token", BigInteger, nullable=False),
    Column("token_hash", Text, nullable=False),
    Column("holder", Text, nullable=True),
    Column("acquired_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("renewed_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    # What is left of the run's budget reservation (docs/budgets.md): set by the claim, lowered as its
    # costs land, gone with the lease (completion, failure, the reaper).
    Column("reserved_usd", Numeric(18, 8), nullable=False, server_default="0"),
    CheckConstraint("expires_at > acquired_at", name="expires_after_acquired"),
)
Index("ix_leases_expires_at", leases.c.expires_at)
Index("ix_leases_agent_id", leases.c.agent_id)
