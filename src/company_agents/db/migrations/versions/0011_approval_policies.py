"""Approval policies: per agent (set at hire) and company-wide rules; the agent's model.

``agents.approval_policy`` says which requests of that agent need a person (``{"spendOverUsd": "10",
"categories": [...]}``; spend over $10 in one request is the default). ``approval_rules`` holds a
company's blanket rules that answer matching requests at once (``auto_approve`` / ``auto_deny``).
``agents.model`` records the model an agent was hired with. A run that ends to wait for an approval has
exit reason ``approval``. The expiry sweep reads pending approvals by ``expires_at``.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
Kind: expand (new columns with defaults, a new table, a widened check)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

OLD_EXIT_REASONS = (
    "'complete', 'failed', 'crash', 'timeout', 'lease_expired', 'killed', 'cancelled', 'handoff', 'shutdown'"
)
NEW_EXIT_REASONS = OLD_EXIT_REASONS + ", 'approval'"
DEFAULT_POLICY = '{"spendOverUsd": "10", "categories": []}'


def upgrade() -> None:
    op.add_column(
        "agents",
        sa.Column(
            "approval_policy", JSONB(), server_default=sa.text(f"'{DEFAULT_POLICY}'::jsonb"), nullable=False
        ),
    )
    op.add_column("agents", sa.Column("model", sa.Text(), nullable=True))
    op.create_table(
        "approval_rules",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("effect", sa.Text(), nullable=False),
        sa.Column("action_pattern", sa.Text(), nullable=True),
        sa.Column("category", sa.Text(), nullable=True),
        sa.Column("max_usd", sa.Numeric(18, 8), nullable=True),
        sa.Column("agent_id", sa.Uuid(), nullable=True),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_rules")),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            ondelete="RESTRICT",
            name=op.f("fk_approval_rules_company_id_companies"),
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], ondelete="RESTRICT", name=op.f("fk_approval_rules_agent_id_agents")
        ),
        sa.CheckConstraint("effect IN ('auto_approve', 'auto_deny')", name=op.f("ck_approval_rules_effect")),
        sa.CheckConstraint(
            "max_usd IS NULL OR max_usd >= 0", name=op.f("ck_approval_rules_max_usd_nonnegative")
        ),
    )
    op.create_index(op.f("ix_approval_rules_company_id"), "approval_rules", ["company_id"])
    op.create_index(
        op.f("ix_approvals_pending_expires_at"),
        "approvals",
        ["expires_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_constraint(op.f("ck_runs_exit_reason"), "runs", type_="check")
    op.create_check_constraint(
        op.f("ck_runs_exit_reason"), "runs", f"exit_reason IS NULL OR exit_reason IN ({NEW_EXIT_REASONS})"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_runs_exit_reason"), "runs", type_="check")
    op.create_check_constraint(
        op.f("ck_runs_exit_reason"), "runs", f"exit_reason IS NULL OR exit_reason IN ({OLD_EXIT_REASONS})"
    )
    op.drop_index(op.f("ix_approvals_pending_expires_at"), table_name="approvals")
    op.drop_table("approval_rules")
    op.drop_column("agents", "model")
    op.drop_column("agents", "approval_policy")
