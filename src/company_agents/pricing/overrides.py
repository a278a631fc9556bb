"""Company price overrides per model (``price_overrides``): they win over the price book.

Setting a price inserts a new row and retires the live one, in one transaction, so an entry's
``override:<id>`` keeps naming the prices it was charged at. A blank cache price falls back, never to
$0: cache reads and 5-minute writes to the input price, 1-hour writes to the 5-minute write price.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, LiteralString
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents.costs.ledger import Usage
from company_agents.db import driver
from company_agents.errors import InvalidInput, NotFound
from company_agents.pricing.book import PER_MTOK, quantize

MAX_MTOK = Decimal("100000")

LIVE_SQL: LiteralString = """
SELECT * FROM price_overrides
WHERE company_id = %(company_id)s AND model = lower(%(model)s) AND retired_at IS NULL
"""

LIST_SQL: LiteralString = """
SELECT * FROM price_overrides
WHERE company_id = %(company_id)s AND (retired_at IS NULL OR %(history)s)
ORDER BY model, created_at
"""

RETIRE_SQL: LiteralString = """
UPDATE price_overrides SET retired_at = now()
WHERE company_id = %(company_id)s AND model = lower(%(model)s) AND retired_at IS NULL
RETURNING *
"""

INSERT_SQL: LiteralString = """
INSERT INTO price_overrides (company_id, model, input_mtok, output_mtok, cache_read_mtok,
                             cache_write_mtok, cache_write_1h_mtok, note, set_by)
VALUES (%(company_id)s, lower(%(model)s), %(input_mtok)s, %(output_mtok)s, %(cache_read_mtok)s,
        %(cache_write_mtok)s, %(cache_write_1h_mtok)s, %(note)s, %(set_by)s)
RETURNING *
"""


@dataclass(frozen=True)
class Rates:
    """USD per million tokens. ``None`` cache prices fall back (see the module docstring)."""

    input_mtok: Decimal
    output_mtok: Decimal
    cache_read_mtok: Decimal | None = None
    cache_write_mtok: Decimal | None = None
    cache_write_1h_mtok: Decimal | None = None

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if value is None:
                continue
            if not isinstance(value, Decimal) or not value.is_finite() or not 0 <= value <= MAX_MTOK:
                raise InvalidInput(f"{name} must be a price between 0 and {MAX_MTOK} USD per million tokens")

    def price(self, usage: Usage) -> Decimal:
        read = self.cache_read_mtok if self.cache_read_mtok is not None else self.input_mtok
        write = self.cache_write_mtok if self.cache_write_mtok is not None else self.input_mtok
        write_1h = self.cache_write_1h_mtok if self.cache_write_1h_mtok is not None else write
        total = (
            usage.input_tokens * self.input_mtok
            + usage.output_tokens * self.output_mtok
            + usage.cache_read_tokens * read
            + usage.cache_write_5m_tokens * write
            + usage.cache_write_1h_tokens * write_1h
        )
        return quantize(total / PER_MTOK)

    @classmethod
    def of_row(cls, row: dict[str, Any]) -> Rates:
        return cls(
            row["input_mtok"],
            row["output_mtok"],
            row["cache_read_mtok"],
            row["cache_write_mtok"],
            row["cache_write_1h_mtok"],
        )


def _model_name(model: str) -> str:
    name = model.strip().lower()
    if not name or len(name) > 200:
        raise InvalidInput("a model name is 1 to 200 characters", field="model")
    return name


async def live_override(conn: AsyncConnection, company_id: UUID, model: str) -> dict[str, Any] | None:
    return await driver.one(conn, LIVE_SQL, {"company_id": company_id, "model": model})


async def list_overrides(
    conn: AsyncConnection, company_id: UUID, *, history: bool = False
) -> list[dict[str, Any]]:
    return await driver.rows(conn, LIST_SQL, {"company_id": company_id, "history": history})


async def set_override(
    conn: AsyncConnection, company_id: UUID, model: str, rates: Rates, *, set_by: str, note: str | None = None
) -> dict[str, Any]:
    """The new live override for ``model`` (the previous one, if any, is retired)."""
    name = _model_name(model)
    await driver.rows(conn, RETIRE_SQL, {"company_id": company_id, "model": name})
    row = await driver.one(
        conn,
        INSERT_SQL,
        {"company_id": company_id, "model": name, "note": note, "set_by": set_by, **rates.__dict__},
    )
    assert row is not None
    return row


async def unset_override(conn: AsyncConnection, company_id: UUID, model: str) -> dict[str, Any]:
    """Retire the live override of ``model``: the book prices it again (or it is unpriced)."""
    rows = await driver.rows(conn, RETIRE_SQL, {"company_id": company_id, "model": _model_name(model)})
    if not rows:
        raise NotFound(f"no price override for model {model!r}", model=model)
    return rows[0]
