"""The money ledger: raw usage per cost entry, billed/imputed/effective USD, daily spend counters.

A cost entry keeps what the provider reported, split the way prices are quoted: uncached input, output,
cache reads, cache writes (5 minute and 1 hour) and reasoning tokens; the billing kind (``api`` or
``subscription``); three amounts (billed, imputed at list price, effective = what budgets count); where
the price came from; and an idempotency key so a replayed event is counted once per run.

``cost_counters`` holds one row per scope (company, team, agent, task, run) and day in the company's time
zone, maintained in the same statement as each entry (``costs/ledger.py``): a period's spend is a sum over
at most a few dozen rows, whatever the size of the ledger. ``costs rebuild`` recomputes them.

``tasks.blocked_reason`` says what a ``blocked`` task waits for (an approval, a budget, a person).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
Kind: expand (new columns with defaults, one rename, one new table)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TOKEN_COLUMNS = (
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
)


def upgrade() -> None:
    op.alter_column("cost_entries", "amount_usd", new_column_name="effective_usd")
    op.add_column("cost_entries", sa.Column("billed_usd", sa.Numeric(18, 8), nullable=True))
    op.add_column("cost_entries", sa.Column("imputed_usd", sa.Numeric(18, 8), nullable=True))
    op.add_column("cost_entries", sa.Column("provider", sa.Text(), nullable=True))
    op.add_column("cost_entries", sa.Column("billing", sa.Text(), nullable=False, server_default="api"))
    for name in TOKEN_COLUMNS:
        op.add_column("cost_entries", sa.Column(name, sa.BigInteger(), nullable=True))
        op.create_check_constraint(
            op.f(f"ck_cost_entries_{name}_nonnegative"),
            "cost_entries",
            f"{name} IS NULL OR {name} >= 0",
        )
    op.add_column("cost_entries", sa.Column("price_source", sa.Text(), nullable=True))
    op.add_column("cost_entries", sa.Column("unpriced", sa.Boolean(), nullable=False, server_default="false"))
    op.add_column("cost_entries", sa.Column("idempotency_key", sa.Text(), nullable=True))
    op.create_check_constraint(
        op.f("ck_cost_entries_billing"), "cost_entries", "billing IN ('api', 'subscription')"
    )
    op.create_unique_constraint(
        op.f("uq_cost_entries_run_id_idempotency_key"), "cost_entries", ["run_id", "idempotency_key"]
    )

    op.add_column("companies", sa.Column("time_zone", sa.Text(), nullable=False, server_default="UTC"))

    op.add_column("tasks", sa.Column("blocked_reason", sa.Text(), nullable=True))
    op.create_check_constraint(
        op.f("ck_tasks_blocked_reason"),
        "tasks",
        "blocked_reason IS NULL OR blocked_reason IN ('approval', 'budget', 'manual')",
    )

    op.create_table(
        "cost_counters",
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("scope_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("usd", sa.Numeric(18, 8), nullable=False, server_default="0"),
        sa.Column("billed_usd", sa.Numeric(18, 8), nullable=False, server_default="0"),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("cache_read_tokens", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("cache_write_tokens", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("llm_usd", sa.Numeric(18, 8), nullable=False, server_default="0"),
        sa.Column("tool_usd", sa.Numeric(18, 8), nullable=False, server_default="0"),
        sa.Column("runtime_usd", sa.Numeric(18, 8), nullable=False, server_default="0"),
        sa.Column("entries", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("unpriced_entries", sa.BigInteger(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("scope", "scope_id", "day", name=op.f("pk_cost_counters")),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            ondelete="RESTRICT",
            name=op.f("fk_cost_counters_company_id_companies"),
        ),
        sa.CheckConstraint(
            "scope IN ('company', 'team', 'agent', 'task', 'run')", name=op.f("ck_cost_counters_scope")
        ),
    )
    op.create_index(op.f("ix_cost_counters_company_id_day"), "cost_counters", ["company_id", "day"])


def downgrade() -> None:
    op.drop_index("ix_cost_counters_company_id_day", table_name="cost_counters")
    op.drop_table("cost_counters")
    op.drop_constraint(op.f("ck_tasks_blocked_reason"), "tasks", type_="check")
    op.drop_column("tasks", "blocked_reason")
    op.drop_column("companies", "time_zone")
    op.drop_constraint(op.f("uq_cost_entries_run_id_idempotency_key"), "cost_entries", type_="unique")
    op.drop_constraint(op.f("ck_cost_entries_billing"), "cost_entries", type_="check")
    for name in ("idempotency_key", "unpriced", "price_source"):
        op.drop_column("cost_entries", name)
    for name in reversed(TOKEN_COLUMNS):
        op.drop_constraint(op.f(f"ck_cost_entries_{name}_nonnegative"), "cost_entries", type_="check")
        op.drop_column("cost_entries", name)
    for name in ("billing", "provider", "imputed_usd", "billed_usd"):
        op.drop_column("cost_entries", name)
    op.alter_column("cost_entries", "effective_usd", new_column_name="amount_usd")
