"""Pricing on real PostgreSQL: overrides win over the book, unknown models stay unpriced, subscriptions
are imputed; the amounts land in the ledger and its counters."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from company_agents import leases, pricing, tasks
from company_agents.costs import ledger
from company_agents.costs.events import cost_from_event
from company_agents.errors import NotFound
from company_agents.pricing.overrides import Rates, list_overrides, set_override, unset_override
from tests.integration.queue_helpers import engine, make_world

__all__ = ["engine"]


async def _claimed(engine: AsyncEngine) -> leases.Claim:
    world = await make_world(engine, agent_names=("ada",))
    async with engine.begin() as conn:
        await tasks.create_task(conn, company="acme", title="t", agent="ada", max_attempts=2)
    async with engine.begin() as conn:
        (claim,) = await leases.claim(
            conn, agent_id=world.agents["ada"]["id"], holder="test", lease_seconds=60
        )
    return claim


async def _record(engine: AsyncEngine, claim: leases.Claim, event: dict[str, object]) -> ledger.RecordedCost:
    async with engine.begin() as conn:
        cost = await pricing.price_cost(conn, claim.company_id, cost_from_event({"type": "cost", **event}))
        return await ledger.record(conn, claim.identity(), fencing_token=claim.fencing_token, cost=cost)


async def _entry(engine: AsyncEngine, entry_id: object) -> dict[str, object]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(text("SELECT * FROM cost_entries WHERE id = :id"), {"id": entry_id})
        ).mappings()
        return dict(row.one())


async def test_book_override_unknown_and_subscription_entries(engine: AsyncEngine) -> None:
    claim = await _claimed(engine)
    # The book: claude-opus-4-5 is $5 in, $25 out, $0.50 cache read, $6.25 5 m write, $10 1 h write.
    usage = {
        "inputTokens": 2000,
        "outputTokens": 1000,
        "cacheReadTokens": 10000,
        "cacheWriteTokens": 400,
        "cacheWrite1hTokens": 100,
    }
    hand = (2000 * 5 + 1000 * 25 + 10000 * Decimal("0.5") + 400 * Decimal("6.25") + 100 * 10) / Decimal(10**6)
    book = await _record(
        engine, claim, {"model": "claude-opus-4-5", "provider": "anthropic", **usage, "id": "a"}
    )
    row = await _entry(engine, book.id)
    assert row["effective_usd"] == row["billed_usd"] == row["imputed_usd"] == hand == Decimal("0.0435")
    assert row["price_source"] == "book:genai-prices@0.2.3" and row["unpriced"] is False

    sub = await _record(
        engine, claim, {"model": "claude-opus-4-5", "billing": "subscription", **usage, "id": "b"}
    )
    row = await _entry(engine, sub.id)
    assert (row["billed_usd"], row["imputed_usd"], row["effective_usd"]) == (0, hand, hand)

    unknown = await _record(engine, claim, {"model": "in-house-7b", "inputTokens": 99, "usd": 1, "id": "c"})
    row = await _entry(engine, unknown.id)
    assert row["unpriced"] is True and row["effective_usd"] is None and row["billed_usd"] is None
    assert row["input_tokens"] == 99 and row["details"] == {"reportedUsd": "1"}

    async with engine.begin() as conn:
        override = await set_override(
            conn, claim.company_id, "Claude-Opus-4-5", Rates(Decimal("1"), Decimal("2")), set_by="user:test"
        )
    won = await _record(engine, claim, {"model": "claude-opus-4-5", **usage, "id": "d"})
    row = await _entry(engine, won.id)
    # No cache prices in the override: reads and writes are charged at its input price, never $0.
    assert row["effective_usd"] == (2000 + 10000 + 500) * Decimal("1e-6") + 1000 * Decimal("2e-6")
    assert row["price_source"] == f"override:{override['id']}"

    async with engine.connect() as conn:
        company = (
            await conn.execute(
                text(
                    "SELECT usd, billed_usd, entries, unpriced_entries FROM cost_counters"
                    " WHERE scope = 'company'"
                )
            )
        ).one()
    overridden = row["effective_usd"]
    assert isinstance(overridden, Decimal)
    # The subscription entry counts in usd (effective) but not in billed_usd.
    assert tuple(company) == (hand * 2 + overridden, hand + overridden, 4, 1)


async def test_setting_a_price_again_retires_the_old_override_and_unset_returns_to_the_book(
    engine: AsyncEngine,
) -> None:
    claim = await _claimed(engine)
    async with engine.begin() as conn:
        first = await set_override(
            conn, claim.company_id, "demo", Rates(Decimal("1"), Decimal("1")), set_by="u"
        )
        second = await set_override(
            conn, claim.company_id, "demo", Rates(Decimal("3"), Decimal("3")), set_by="u"
        )
        live = await list_overrides(conn, claim.company_id)
        history = await list_overrides(conn, claim.company_id, history=True)
        assert [r["id"] for r in live] == [second["id"]] and len(history) == 2 and first["id"] != second["id"]
        found = await pricing.quote(conn, claim.company_id, "DEMO", None, ledger.Usage(input_tokens=10**6))
        assert found is not None and found.usd == 3 and found.source == f"override:{second['id']}"
        await unset_override(conn, claim.company_id, "demo")
        assert await pricing.quote(conn, claim.company_id, "demo", None, ledger.Usage(input_tokens=1)) is None
        with pytest.raises(NotFound):
            await unset_override(conn, claim.company_id, "demo")


async def test_repricing_books_the_difference_once_and_refuses_an_unknown_model(engine: AsyncEngine) -> None:
    from company_agents.costs.adjust import reprice
    from company_agents.errors import InvalidInput

    claim = await _claimed(engine)
    entry = await _record(engine, claim, {"model": "house-7b", "inputTokens": 10**6, "outputTokens": 10**6})
    async with engine.begin() as conn:
        with pytest.raises(InvalidInput, match="no price"):
            await reprice(conn, entry.id)
        await set_override(conn, claim.company_id, "house-7b", Rates(Decimal("1"), Decimal("3")), set_by="u")
        first = await reprice(conn, entry.id)
        assert first is not None and first["effective_usd"] == 4 and first["reprices"] is True
        assert await reprice(conn, entry.id) is None  # already at its price
        await set_override(conn, claim.company_id, "house-7b", Rates(Decimal("1"), Decimal("2")), set_by="u")
        second = await reprice(conn, entry.id, reason="new contract")
        assert second is not None and second["effective_usd"] == -1 and second["corrected_usd"] == 3
        counted = (
            await conn.execute(text("SELECT usd, unpriced_entries FROM cost_counters WHERE scope = 'task'"))
        ).one()
    assert tuple(counted) == (Decimal(3), 0)
