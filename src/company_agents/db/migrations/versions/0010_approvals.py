"""Approvals: questions from agents and budgets that a person answers, with an inbox.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
Kind: expand (a new table)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

STATUSES = "'pending', 'approved', 'approved_with_edits', 'denied', 'expired', 'asked_question'"


def upgrade() -> None:
    now = sa.text("now()")
    op.create_table(
        "approvals",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=True),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.Column("agent_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.Text(), server_default="action", nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("reasoning", sa.Text(), server_default="", nullable=False),
        sa.Column("cost_usd", sa.Numeric(18, 8), nullable=True),
        sa.Column("cost_tokens", sa.BigInteger(), nullable=True),
        sa.Column("side_effects", JSONB(), server_default="[]", nullable=False),
        sa.Column("if_denied", sa.Text(), server_default="", nullable=False),
        sa.Column("details", JSONB(), server_default="{}", nullable=False),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("edits", JSONB(), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("comments", JSONB(), server_default="[]", nullable=False),
        sa.Column("requested_by", sa.Text(), nullable=False),
        sa.Column("decided_by", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=now, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=now, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approvals")),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            ondelete="RESTRICT",
            name=op.f("fk_approvals_company_id_companies"),
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], ondelete="RESTRICT", name=op.f("fk_approvals_task_id_tasks")
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], ondelete="RESTRICT", name=op.f("fk_approvals_run_id_runs")
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], ondelete="RESTRICT", name=op.f("fk_approvals_agent_id_agents")
        ),
        sa.CheckConstraint("kind IN ('action', 'budget_override')", name=op.f("ck_approvals_kind")),
        sa.CheckConstraint(f"status IN ({STATUSES})", name=op.f("ck_approvals_status")),
        sa.CheckConstraint("length(action) BETWEEN 1 AND 500", name=op.f("ck_approvals_action_length")),
        sa.CheckConstraint(
            "cost_usd IS NULL OR cost_usd >= 0", name=op.f("ck_approvals_cost_usd_nonnegative")
        ),
        sa.CheckConstraint(
            "(status = 'approved_with_edits') = (edits IS NOT NULL)",
            name=op.f("ck_approvals_edits_with_status"),
        ),
    )
    op.create_index(
        op.f("ix_approvals_one_pending_per_task_action"),
        "approvals",
        ["task_id", "action"],
        unique=True,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(op.f("ix_approvals_company_id_status"), "approvals", ["company_id", "status"])


def downgrade() -> None:
    op.drop_table("approvals")
