"""Runs record how their agent was isolated (``runs.isolation``), and may end on a resource limit.

``isolation`` is the mode the orchestrator chose at start-up (``user``, ``sandbox``, ``none``;
docs/security.md), written when the run starts; NULL for runs from before. ``exit_reason`` gains
``resource_limit``: the agent exceeded one of its limits (CPU time, address space, open files, processes).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
Kind: expand (a nullable column; a CHECK widened)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# As 0013 left them.
OLD_REASONS = (
    "'complete', 'failed', 'crash', 'timeout', 'lease_expired', 'killed', 'cancelled', 'handoff', "
    "'shutdown', 'approval', 'budget', 'loop_budget'"
)
NEW_REASONS = OLD_REASONS + ", 'resource_limit'"


def upgrade() -> None:
    op.add_column("runs", sa.Column("isolation", sa.Text(), nullable=True))
    op.create_check_constraint(
        op.f("ck_runs_isolation"), "runs", "isolation IS NULL OR isolation IN ('user', 'sandbox', 'none')"
    )
    op.drop_constraint(op.f("ck_runs_exit_reason"), "runs", type_="check")
    op.create_check_constraint(
        op.f("ck_runs_exit_reason"), "runs", f"exit_reason IS NULL OR exit_reason IN ({NEW_REASONS})"
    )


def downgrade() -> None:
    op.execute("UPDATE runs SET exit_reason = 'crash' WHERE exit_reason = 'resource_limit'")
    op.drop_constraint(op.f("ck_runs_exit_reason"), "runs", type_="check")
    op.create_check_constraint(
        op.f("ck_runs_exit_reason"), "runs", f"exit_reason IS NULL OR exit_reason IN ({OLD_REASONS})"
    )
    op.drop_constraint(op.f("ck_runs_isolation"), "runs", type_="check")
    op.drop_column("runs", "isolation")
