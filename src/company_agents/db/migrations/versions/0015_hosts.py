"""Many orchestrators, many hosts: the master key that owns the database, the registry of running
orchestrators, and a record of every backup (docs/deployment.md).

``database_key`` is back-filled from what an existing database already says about its key: the key its
secrets are under, else the key the last rotation installed, else the key of the newest seal or MAC.
A database that never met a key gets its row the first time one is used with it.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
Kind: expand (three new tables)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

BACKFILL_KEY = """
INSERT INTO database_key (id, key_id, recorded_by)
SELECT 1, k, 'migration 0015' FROM (SELECT coalesce(
    (SELECT key_id FROM secrets LIMIT 1),
    (SELECT payload->>'newKeyId' FROM audit_events WHERE action = 'master_key.rotated'
     ORDER BY id DESC LIMIT 1),
    (SELECT key_id FROM audit_seals ORDER BY id DESC LIMIT 1),
    (SELECT mac_key_id FROM audit_events WHERE mac_key_id IS NOT NULL ORDER BY id DESC LIMIT 1)
) AS k) AS found
WHERE k IS NOT NULL
"""


def upgrade() -> None:
    op.create_table(
        "database_key",
        sa.Column("id", sa.SmallInteger(), server_default=sa.text("1"), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("recorded_by", sa.Text(), server_default="", nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_database_key_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_database_key")),
    )
    op.execute(BACKFILL_KEY)
    op.create_table(
        "orchestrators",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("host", sa.Text(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("holder", sa.Text(), nullable=False),
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column("schema_revision", sa.Text(), nullable=False),
        sa.Column("isolation", sa.Text(), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("api_url", sa.Text(), server_default="", nullable=False),
        sa.Column("heartbeat_seconds", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column(
            "last_heartbeat", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.CheckConstraint("heartbeat_seconds > 0", name=op.f("ck_orchestrators_heartbeat_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orchestrators")),
    )
    op.create_index(op.f("ix_orchestrators_host"), "orchestrators", ["host"])
    op.create_table(
        "backups",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("host", sa.Text(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column(
            "contents",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("includes_secrets", sa.Boolean(), nullable=False),
        sa.Column("scheduled", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("schema_revision", sa.Text(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backups")),
    )
    op.create_index(op.f("ix_backups_host_path"), "backups", ["host", "path"], unique=True)


def downgrade() -> None:
    op.drop_index(op.f("ix_backups_host_path"), table_name="backups")
    op.drop_table("backups")
    op.drop_index(op.f("ix_orchestrators_host"), table_name="orchestrators")
    op.drop_table("orchestrators")
    op.drop_table("database_key")
