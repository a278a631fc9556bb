"""Runs remember their lease token's hash, so stale holders get 409 rather than 401.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
Kind: expand
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("lease_token_hash", sa.Text(), nullable=True))
    op.create_unique_constraint(op.f("uq_runs_lease_token_hash"), "runs", ["lease_token_hash"])


def downgrade() -> None:
    op.drop_constraint(op.f("uq_runs_lease_token_hash"), "runs", type_="unique")
    op.drop_column("runs", "lease_token_hash")
