"""The tasks board's index: each column is one state's tasks newest first by (created_at, id)
(``dashboard/pages.py``, ``tasks.list_tasks`` with a status filter), so the index that answers it is
(company_id, status, created_at, id). It replaces ``ix_tasks_company_id_status``, its prefix, which
the overview's counts by state still use index-only: one index written per transition, not two.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04
Kind: expand (indexes only)
"""

from __future__ import annotations

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_tasks_company_id_status_created_at_id",
        "tasks",
        ["company_id", "status", "created_at", "id"],
        unique=False,
    )
    op.drop_index("ix_tasks_company_id_status", table_name="tasks")


def downgrade() -> None:
    op.create_index("ix_tasks_company_id_status", "tasks", ["company_id", "status"], unique=False)
    op.drop_index("ix_tasks_company_id_status_created_at_id", table_name="tasks")
