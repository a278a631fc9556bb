"""Company price overrides: a per-model price that wins over the price book (``pricing``).

``pricing set`` inserts a new row and retires the one it replaces; ``pricing unset`` retires it. Rows are
never changed otherwise, so ``override:<id>`` on a cost entry names the exact prices it was charged at.
Prices are USD per million tokens, as providers quote them. A blank cache price falls back to the input
price (a cache write is never silently $0).
"""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, DateTime, ForeignKey, Index, Numeric, Table, Text, Uuid, text

from company_agents.db.schema.base import created_at, metadata, uuid_pk

PRICE_COLUMNS = (
    "input_mtok",
    "output_mtok",
    "cache_read_mtok",
    "cache_write_mtok",
    "cache_write_1h_mtok",
)

price_overrides = Table(
    "price_overrides",
    metadata,
    uuid_pk(),
    Column("company_id", Uuid, ForeignKey("companies.id", ondelete="CASCADE"), nullable=False),
    # Lower-cased model name as agents report it (``claude-sonnet-4-5``, ``demo-offline``).
    Column("model", Text, nullable=False),
    Column("input_mtok", Numeric(18, 8), nullable=False),
    Column("output_mtok", Numeric(18, 8), nullable=False),
    Column("cache_read_mtok", Numeric(18, 8), nullable=True),
    Column("cache_write_mtok", Numeric(18, 8), nullable=True),
    Column("cache_write_1h_mtok", Numeric(18, 8), nullable=True),
    Column("note", Text, nullable=True),
    Column("set_by", Text, nullable=False),
    created_at(),
    Column("retired_at", DateTime(timezone=True), nullable=True),
    *(
        CheckConstraint(f"{name} IS NULL OR {name} >= 0", name=f"{name}_nonnegative")
        for name in PRICE_COLUMNS
    ),
    CheckConstraint("model = lower(model) AND length(model) BETWEEN 1 AND 200", name="model"),
)
# One live override per company and model.
Index(
    "ix_price_overrides_company_id_model",
    price_overrides.c.company_id,
    price_overrides.c.model,
    unique=True,
    postgresql_where=text("retired_at IS NULL"),
)
