"""Cost entries: every metered cost, insert-only (a trigger refuses UPDATE and DELETE).

Corrections are offsetting ``adjustment`` rows that point at the entry they correct.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Numeric,
    Table,
    Text,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB

from company_agents.db.schema.base import created_at, in_list, metadata, uuid_pk

COST_KINDS = ("llm", "tool", "runtime", "adjustment")

cost_entries = Table(
    "cost_entries",
    metadata,
    uuid_pk(),
    Column("company_id", Uuid, ForeignKey("companies.id", ondelete="RESTRICT"), nullable=False),
    Column("team_id", Uuid, ForeignKey("teams.id", ondelete="RESTRICT"), nullable=True),
    Column("agent_id", Uuid, ForeignKey("agents.id", ondelete="RESTRICT"), nullable=True),
    Column("task_id", Uuid, ForeignKey("tasks.id", ondelete="RESTRICT"), nullable=True),
    Column("run_id", Uuid, ForeignKey("runs.id", ondelete="RESTRICT"), nullable=True),
    Column("kind", Text, nullable=False),
    Column("model", Text, nullable=True),
    Column("input_tokens", BigInteger, nullable=True),
    Column("output_tokens", BigInteger, nullable=True),
    # NULL until priced (the pricing table comes with the costs issue); never rounded to floats.
    Column("amount_usd", Numeric(18, 8), nullable=True),
    Column("fencing_token", BigInteger, nullable=True),
    Column("adjusts_entry_id", Uuid, ForeignKey("cost_entries.id", ondelete="RESTRICT"), nullable=True),
    Column("details", JSONB, nullable=False, server_default="{}"),
    created_at(),
    CheckConstraint(in_list("kind", COST_KINDS), name="kind"),
    CheckConstraint("input_tokens IS NULL OR input_tokens >= 0", name="input_tokens_nonnegative"),
    CheckConstraint("output_tokens IS NULL OR output_tokens >= 0", name="output_tokens_nonnegative"),
    CheckConstraint("(kind = 'adjustment') = (adjusts_entry_id IS NOT NULL)", name="adjustment_target"),
)
Index("ix_cost_entries_company_id_created_at", cost_entries.c.company_id, cost_entries.c.created_at)
Index("ix_cost_entries_task_id", cost_entries.c.task_id)
Index("ix_cost_entries_agent_id", cost_entries.c.agent_id)
