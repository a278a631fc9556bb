"""Pricing: what a cost entry's usage costs, from a company override or the price book.

``price_cost`` turns an unpriced ``llm`` entry into a priced one (or leaves it unpriced when neither an
override nor the book knows the model: never $0). Billing decides the three amounts: ``api`` is billed
at the price; ``subscription`` is billed 0 and imputed at the price, and budgets count the imputed
amount (docs/design.md §10).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents.costs.ledger import Amounts, NewCost, Usage
from company_agents.pricing.book import book_price, book_source, book_version, load_book
from company_agents.pricing.overrides import Rates, live_override

__all__ = ["Quote", "amounts_for", "book_source", "book_version", "price_cost", "quote"]


@dataclass(frozen=True)
class Quote:
    usd: Decimal
    source: str
    model_id: str | None = None


def amounts_for(billing: str, quote: Quote | None) -> Amounts:
    if quote is None:
        return Amounts.unpriced_usage()
    billed = Decimal(0) if billing == "subscription" else quote.usd
    return Amounts(
        billed_usd=billed, imputed_usd=quote.usd, effective_usd=quote.usd, price_source=quote.source
    )


async def quote(
    conn: AsyncConnection,
    company_id: UUID,
    model: str,
    provider: str | None,
    usage: Usage,
    *,
    at: datetime | None = None,
) -> Quote | None:
    """The price of ``usage``: the company's live override for the model wins over the book."""
    override = await live_override(conn, company_id, model)
    if override is not None:
        return Quote(Rates.of_row(override).price(usage), f"override:{override['id']}", override["model"])
    await load_book()
    found = book_price(model, provider, usage, at=at)
    if found is None:
        return None
    return Quote(found.usd, found.source, found.model_id)


async def price_cost(
    conn: AsyncConnection, company_id: UUID, cost: NewCost, *, at: datetime | None = None
) -> NewCost:
    """``cost`` with its amounts, when it is an unpriced ``llm`` cost of a named model; else unchanged."""
    if cost.kind != "llm" or not cost.amounts.unpriced or cost.model is None:
        return cost
    found = await quote(conn, company_id, cost.model, cost.provider, cost.usage, at=at)
    if found is None:
        return cost
    details = dict(cost.details)
    if found.model_id is not None and found.model_id != cost.model:
        details["pricedAs"] = found.model_id
    return replace(cost, amounts=amounts_for(cost.billing, found), details=details)
