"""Runs record the agent CLI's session id (``runs.cli_session``), so the next run of the task can resume
that session after an approval or a rejection with feedback (docs/adapters.md §Sessions).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-04
Kind: expand (a nullable column)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("cli_session", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("runs", "cli_session")
