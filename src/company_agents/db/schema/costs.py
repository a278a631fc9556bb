"""Cost entries: every metered cost, insert-only (a trigger refuses UPDATE and DELETE).

Corrections are offsetting ``adjustment`` rows that point at the entry they correct. ``cost_counters``
keeps one row per scope and day (in the company's time zone), written in the same statement as each entry,
so a period's spend never needs a scan of the ledger (docs/design.md §10).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Index,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from company_agents.db.schema.base import created_at, in_list, metadata, uuid_pk

COST_KINDS = ("llm", "tool", "runtime", "adjustment")
BILLING_KINDS = ("api", "subscription")
COUNTER_SCOPES = ("company", "team", "agent", "task", "run")
# Token columns beside input_tokens (uncached input) and output_tokens, as providers quote prices.
EXTRA_TOKEN_COLUMNS = (
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
)

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
    Column("provider", Text, nullable=True),
    Column("billing", Text, nullable=False, server_default="api"),
    # Uncached input only: cache reads and writes have columns of their own (Anthropic's convention).
    Column("input_tokens", BigInteger, nullable=True),
    Column("output_tokens", BigInteger, nullable=True),
    *(Column(name, BigInteger, nullable=True) for name in EXTRA_TOKEN_COLUMNS),
    # What the provider bills (0 on a subscription), the list price of the usage, and the amount budgets
    # count (billed for api, imputed for subscription). NULL with unpriced = true for an unknown model.
    Column("billed_usd", Numeric(18, 8), nullable=True),
    Column("imputed_usd", Numeric(18, 8), nullable=True),
    Column("effective_usd", Numeric(18, 8), nullable=True),
    Column("price_source", Text, nullable=True),
    Column("unpriced", Boolean, nullable=False, server_default="false"),
    # Chosen by the reporter (or derived from the event), so a replayed event is counted once per run.
    Column("idempotency_key", Text, nullable=True),
    Column("fencing_token", BigInteger, nullable=True),
    Column("adjusts_entry_id", Uuid, ForeignKey("cost_entries.id", ondelete="RESTRICT"), nullable=True),
    Column("details", JSONB, nullable=False, server_default="{}"),
    created_at(),
    CheckConstraint(in_list("kind", COST_KINDS), name="kind"),
    CheckConstraint("input_tokens IS NULL OR input_tokens >= 0", name="input_tokens_nonnegative"),
    CheckConstraint("output_tokens IS NULL OR output_tokens >= 0", name="output_tokens_nonnegative"),
    CheckConstraint("(kind = 'adjustment') = (adjusts_entry_id IS NOT NULL)", name="adjustment_target"),
    CheckConstraint(in_list("billing", BILLING_KINDS), name="billing"),
    *(
        CheckConstraint(f"{name} IS NULL OR {name} >= 0", name=f"{name}_nonnegative")
        for name in EXTRA_TOKEN_COLUMNS
    ),
    UniqueConstraint("run_id", "idempotency_key"),
)
Index("ix_cost_entries_company_id_created_at", cost_entries.c.company_id, cost_entries.c.created_at)
Index("ix_cost_entries_task_id", cost_entries.c.task_id)
Index("ix_cost_entries_agent_id", cost_entries.c.agent_id)
# What `cost show` and `doctor` surface: the unpriced entries, and whether an adjustment re-priced one.
Index(
    "ix_cost_entries_company_id_model",
    cost_entries.c.company_id,
    cost_entries.c.model,
    postgresql_where=text("unpriced"),
)
Index(
    "ix_cost_entries_adjusts_entry_id",
    cost_entries.c.adjusts_entry_id,
    postgresql_where=text("adjusts_entry_id IS NOT NULL"),
)

cost_counters = Table(
    "cost_counters",
    metadata,
    Column("scope", Text, nullable=False),
    Column("scope_id", Uuid, nullable=False),
    # The day in the company's time zone (companies.time_zone) when the entry was written.
    Column("day", Date, nullable=False),
    Column("company_id", Uuid, ForeignKey("companies.id", ondelete="RESTRICT"), nullable=False),
    Column("usd", Numeric(18, 8), nullable=False, server_default="0"),
    Column("billed_usd", Numeric(18, 8), nullable=False, server_default="0"),
    Column("input_tokens", BigInteger, nullable=False, server_default="0"),
    Column("output_tokens", BigInteger, nullable=False, server_default="0"),
    Column("cache_read_tokens", BigInteger, nullable=False, server_default="0"),
    Column("cache_write_tokens", BigInteger, nullable=False, server_default="0"),
    Column("llm_usd", Numeric(18, 8), nullable=False, server_default="0"),
    Column("tool_usd", Numeric(18, 8), nullable=False, server_default="0"),
    Column("runtime_usd", Numeric(18, 8), nullable=False, server_default="0"),
    Column("entries", BigInteger, nullable=False, server_default="0"),
    Column("unpriced_entries", BigInteger, nullable=False, server_default="0"),
    PrimaryKeyConstraint("scope", "scope_id", "day"),
    CheckConstraint(in_list("scope", COUNTER_SCOPES), name="scope"),
)
Index("ix_cost_counters_company_id_day", cost_counters.c.company_id, cost_counters.c.day)
