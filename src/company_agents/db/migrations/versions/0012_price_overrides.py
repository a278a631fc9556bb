"""Company price overrides per model, which win over the price book (``pricing set|unset``).

A new price is a new row (the old one retired), so a cost entry's ``override:<id>`` names the prices it
was charged at. At most one live override per company and model. Two partial indexes on the ledger serve
``cost show`` and ``doctor``: its unpriced entries by model, and the adjustments of an entry.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
Kind: expand (a new table)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

PRICE_COLUMNS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok", "cache_write_1h_mtok")


def upgrade() -> None:
    op.create_table(
        "price_overrides",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("input_mtok", sa.Numeric(18, 8), nullable=False),
        sa.Column("output_mtok", sa.Numeric(18, 8), nullable=False),
        sa.Column("cache_read_mtok", sa.Numeric(18, 8), nullable=True),
        sa.Column("cache_write_mtok", sa.Numeric(18, 8), nullable=True),
        sa.Column("cache_write_1h_mtok", sa.Numeric(18, 8), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("set_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        *(
            sa.CheckConstraint(
                f"{name} IS NULL OR {name} >= 0", name=op.f(f"ck_price_overrides_{name}_nonnegative")
            )
            for name in PRICE_COLUMNS
        ),
        sa.CheckConstraint(
            "model = lower(model) AND length(model) BETWEEN 1 AND 200", name=op.f("ck_price_overrides_model")
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            ondelete="CASCADE",
            name=op.f("fk_price_overrides_company_id_companies"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_overrides")),
    )
    op.create_index(
        op.f("ix_price_overrides_company_id_model"),
        "price_overrides",
        ["company_id", "model"],
        unique=True,
        postgresql_where=sa.text("retired_at IS NULL"),
    )

    op.create_index(
        op.f("ix_cost_entries_company_id_model"),
        "cost_entries",
        ["company_id", "model"],
        postgresql_where=sa.text("unpriced"),
    )
    op.create_index(
        op.f("ix_cost_entries_adjusts_entry_id"),
        "cost_entries",
        ["adjusts_entry_id"],
        postgresql_where=sa.text("adjusts_entry_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_cost_entries_adjusts_entry_id"), table_name="cost_entries")
    op.drop_index(op.f("ix_cost_entries_company_id_model"), table_name="cost_entries")
    op.drop_index(op.f("ix_price_overrides_company_id_model"), table_name="price_overrides")
    op.drop_table("price_overrides")
