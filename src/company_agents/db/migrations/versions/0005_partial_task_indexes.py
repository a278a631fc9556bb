"""Partial indexes on tasks.parent_id and tasks.assigned_agent_id (only rows that have one).

Task updates are never HOT (status is indexed), so each transition adds an entry to every index of the
table; rows without a parent or a named agent no longer pay for these two.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
Kind: expand (replaces two indexes with smaller ones)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_tasks_parent_id", table_name="tasks")
    op.drop_index("ix_tasks_assigned_agent_id", table_name="tasks")
    op.create_index(
        "ix_tasks_parent_id", "tasks", ["parent_id"], postgresql_where=sa.text("parent_id IS NOT NULL")
    )
    op.create_index(
        "ix_tasks_assigned_agent_id",
        "tasks",
        ["assigned_agent_id"],
        postgresql_where=sa.text("assigned_agent_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_assigned_agent_id", table_name="tasks")
    op.drop_index("ix_tasks_parent_id", table_name="tasks")
    op.create_index("ix_tasks_assigned_agent_id", "tasks", ["assigned_agent_id"])
    op.create_index("ix_tasks_parent_id", "tasks", ["parent_id"])
