"""Runs may end as ``loop_detected``: the model gateway saw the same request body several times in a
row (docs/gateway.md).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02
Kind: expand (a CHECK widened)
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

# As 0014 left them.
OLD_REASONS = (
    "'complete', 'failed', 'crash', 'timeout', 'lease_expired', 'killed', 'cancelled', 'handoff', "
    "'shutdown', 'approval', 'budget', 'loop_budget', 'resource_limit'"
)
NEW_REASONS = OLD_REASONS + ", 'loop_detected'"


def upgrade() -> None:
    op.drop_constraint(op.f("ck_runs_exit_reason"), "runs", type_="check")
    op.create_check_constraint(
        op.f("ck_runs_exit_reason"), "runs", f"exit_reason IS NULL OR exit_reason IN ({NEW_REASONS})"
    )


def downgrade() -> None:
    op.execute("UPDATE runs SET exit_reason = 'loop_budget' WHERE exit_reason = 'loop_detected'")
    op.drop_constraint(op.f("ck_runs_exit_reason"), "runs", type_="check")
    op.create_check_constraint(
        op.f("ck_runs_exit_reason"), "runs", f"exit_reason IS NULL OR exit_reason IN ({OLD_REASONS})"
    )
