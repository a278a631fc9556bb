"""Cost entries and adjustments as the API and ``cost entries|export|adjust --json`` show them."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

from pydantic import Field

from company_agents.api.schemas.common import MONEY_PATTERN, Body, Money, Public, UtcTime


class CostEntry(Public):
    id: UUID
    created_at: UtcTime
    kind: str
    model: str | None
    provider: str | None
    billing: str
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_write_5m_tokens: int | None
    cache_write_1h_tokens: int | None
    reasoning_tokens: int | None
    billed_usd: Money | None
    imputed_usd: Money | None
    effective_usd: Money | None
    price_source: str | None
    unpriced: bool
    company_id: UUID
    team_id: UUID | None
    agent_id: UUID | None
    task_id: UUID | None
    run_id: UUID | None
    adjusts_entry_id: UUID | None
    idempotency_key: str | None
    # As stored: its keys (a tool's, a provider's) are data, not ours to rename.
    details: dict[str, Any]


class CostAdjustment(Public):
    """What an adjustment booked; ``adjusted`` false (and the rest null) when a re-price found the
    entry already at its price."""

    adjusted: bool
    adjusts_entry_id: UUID
    id: UUID | None = None
    effective_usd: Money | None = None
    billed_usd: Money | None = None
    corrected_usd: Money | None = None
    reason: str | None = None
    reprices: bool | None = None
    price_source: str | None = None
    price_usd: Money | None = None
    day: date | None = None
    created_at: UtcTime | None = None


class CostAdjust(Body):
    """Give ``usd`` (signed: negative refunds) with a ``reason``, or ``reprice`` to price the entry
    again with today's override or book."""

    entry: str = Field(
        pattern=r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$|^[0-9a-f]{6,32}$",
        description="The entry's id or a unique prefix of 6+ hex digits.",
    )
    usd: str | None = Field(default=None, pattern=MONEY_PATTERN)
    reprice: bool = False
    reason: str | None = Field(default=None, min_length=1, max_length=500, pattern=r"\S")
