"""API tokens for the REST API ``/v1`` (``token create|list|rotate|revoke``), and the index the API's
task list pages by (company, created_at, id).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02
Kind: expand (a new table)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("env", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("hint", sa.Text(), nullable=False),
        sa.Column("scopes", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=True),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("env IN ('dev', 'prod')", name=op.f("ck_api_tokens_env")),
        sa.CheckConstraint("length(name) BETWEEN 1 AND 200", name=op.f("ck_api_tokens_name_length")),
        sa.CheckConstraint("cardinality(scopes) >= 1", name=op.f("ck_api_tokens_scopes_not_empty")),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            ondelete="CASCADE",
            name=op.f("fk_api_tokens_company_id_companies"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_index(
        op.f("ix_tasks_company_id_created_at_id"), "tasks", ["company_id", "created_at", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_tasks_company_id_created_at_id"), table_name="tasks")
    op.drop_table("api_tokens")
