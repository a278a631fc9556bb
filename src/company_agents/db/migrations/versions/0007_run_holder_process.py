"""Runs record the orchestrator process holding them and the agent's process group.

With them, an orchestrator starting on the same host recognises the runs of a dead predecessor (its pid is
gone, or now names a process that started at another time), ends their agent process groups and puts the
tasks back in the queue at once instead of waiting out the lease.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
Kind: expand (nullable columns only)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

COLUMNS = (
    ("holder_host", sa.Text()),
    ("holder_pid", sa.Integer()),
    ("holder_started_at", sa.DateTime(timezone=True)),
    ("agent_pgid", sa.Integer()),
    ("agent_started_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    for name, type_ in COLUMNS:
        op.add_column("runs", sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    for name, _ in reversed(COLUMNS):
        op.drop_column("runs", name)
