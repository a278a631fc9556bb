"""Indexes for the company overview (``overview.py``), so it stays fast at 100k tasks: task counts by
state index-only, today's finishes and the tasks in flight from small partial indexes, and an agent's
latest runs in order (``ix_runs_agent_id_started_at`` replaces ``ix_runs_agent_id``, which it covers).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02
Kind: expand (indexes only)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

IN_FLIGHT = "status IN ('assigned', 'running', 'review', 'handoff', 'blocked')"


def upgrade() -> None:
    op.create_index("ix_tasks_company_id_status", "tasks", ["company_id", "status"], unique=False)
    op.create_index(
        "ix_tasks_company_id_finished_at",
        "tasks",
        ["company_id", "finished_at"],
        unique=False,
        postgresql_include=["status"],
        postgresql_where=sa.text("finished_at IS NOT NULL"),
    )
    op.create_index(
        "ix_tasks_in_flight",
        "tasks",
        ["company_id", "created_at", "id"],
        unique=False,
        postgresql_where=sa.text(IN_FLIGHT),
    )
    op.create_index("ix_runs_agent_id_started_at", "runs", ["agent_id", "started_at"], unique=False)
    op.drop_index("ix_runs_agent_id", table_name="runs")


def downgrade() -> None:
    op.create_index("ix_runs_agent_id", "runs", ["agent_id"], unique=False)
    op.drop_index("ix_runs_agent_id_started_at", table_name="runs")
    op.drop_index("ix_tasks_in_flight", table_name="tasks")
    op.drop_index("ix_tasks_company_id_finished_at", table_name="tasks")
    op.drop_index("ix_tasks_company_id_status", table_name="tasks")
