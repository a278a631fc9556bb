"""Companies: the top of the tree. Slugs are unique and permanent; companies are archived, not deleted."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, DateTime, Numeric, Table, Text

from company_agents.db.schema.base import created_at, in_list, metadata, updated_at, uuid_pk

COMPANY_STATUSES = ("active", "archived")
FISCAL_PERIODS = ("monthly", "rolling-30d")

companies = Table(
    "companies",
    metadata,
    uuid_pk(),
    Column("slug", Text, nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("budget_usd", Numeric(14, 4), nullable=True),
    Column("fiscal_period", Text, nullable=False, server_default="monthly"),
    # An IANA zone name: days, periods and windows of the money roll-ups are counted in it.
    Column("time_zone", Text, nullable=False, server_default="UTC"),
    Column("default_adapter", Text, nullable=True),
    Column("status", Text, nullable=False, server_default="active"),
    created_at(),
    updated_at(),
    Column("archived_at", DateTime(timezone=True), nullable=True),
    CheckConstraint(in_list("status", COMPANY_STATUSES), name="status"),
    CheckConstraint(in_list("fiscal_period", FISCAL_PERIODS), name="fiscal_period"),
    CheckConstraint("slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'", name="slug_format"),
    CheckConstraint("budget_usd IS NULL OR budget_usd >= 0", name="budget_nonnegative"),
)
