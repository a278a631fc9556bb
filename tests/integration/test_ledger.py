"""The ledger on real PostgreSQL: an entry and its five daily counters in one fenced statement."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from company_agents import leases, tasks
from company_agents.costs import counters, ledger
from company_agents.costs.events import cost_from_event
from company_agents.errors import InvalidInput, StaleFencingToken
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


def _tool_cost(usd: str, key: str | None = None) -> ledger.NewCost:
    event = {"type": "cost", "kind": "tool", "usd": usd, "name": "search"}
    if key is not None:
        event["id"] = key
    return cost_from_event(event)


async def test_an_entry_bumps_every_scope_once_and_a_replay_counts_nothing(engine: AsyncEngine) -> None:
    claim = await _claimed(engine)
    ident = claim.identity()
    async with engine.begin() as conn:
        first = await ledger.record(
            conn, ident, fencing_token=claim.fencing_token, cost=_tool_cost("0.25", "a")
        )
        again = await ledger.record(
            conn, ident, fencing_token=claim.fencing_token, cost=_tool_cost("0.25", "a")
        )
        other = await ledger.record(conn, ident, fencing_token=claim.fencing_token, cost=_tool_cost("0.5"))
    assert not first.duplicate and again.duplicate and again.id == first.id and other.id != first.id
    async with engine.connect() as conn:
        rows = (
            await conn.execute(text("SELECT scope, usd, tool_usd, entries FROM cost_counters ORDER BY scope"))
        ).all()
        today = await counters.company_today(conn, claim.company_id)
        spent = await counters.spent(conn, scope="task", scope_id=claim.task_id, first=today, last=today)
        before = await counters.spent(
            conn, scope="task", scope_id=claim.task_id, first=date(2000, 1, 1), last=date(2000, 1, 31)
        )
    assert [r[0] for r in rows] == ["agent", "company", "run", "task", "team"]
    assert {(r[1], r[2], r[3]) for r in rows} == {(Decimal("0.75"), Decimal("0.75"), 2)}
    assert spent == Decimal("0.75") and before == 0


async def test_a_stale_fencing_token_writes_no_entry_and_no_counter(engine: AsyncEngine) -> None:
    claim = await _claimed(engine)
    async with engine.begin() as conn:
        with pytest.raises(StaleFencingToken):
            await ledger.record(
                conn, claim.identity(), fencing_token=claim.fencing_token + 1, cost=_tool_cost("1")
            )
    async with engine.connect() as conn:
        counts = (
            await conn.execute(
                text("SELECT (SELECT count(*) FROM cost_entries), (SELECT count(*) FROM cost_counters)")
            )
        ).one()
    assert tuple(counts) == (0, 0)


async def test_the_day_is_the_company_s_own(engine: AsyncEngine) -> None:
    claim = await _claimed(engine)
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE companies SET time_zone = 'Pacific/Kiritimati'"))  # UTC+14
        recorded = await ledger.record(
            conn, claim.identity(), fencing_token=claim.fencing_token, cost=_tool_cost("1")
        )
        expected = (
            await conn.execute(text("SELECT (now() AT TIME ZONE 'Pacific/Kiritimati')::date"))
        ).scalar()
    assert recorded.day == expected


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"inputTokens": -1}, "inputTokens"),
        ({"inputTokens": True}, "inputTokens"),
        ({"kind": "adjustment"}, "'kind'"),
        ({"billing": "free"}, "'billing'"),
        ({"kind": "tool"}, "needs 'usd'"),
        ({"kind": "tool", "usd": "NaN"}, "'usd'"),
        ({"kind": "tool", "usd": "-1"}, "'usd'"),
        ({"model": ""}, "'model'"),
        ({"usd": "a lot"}, "not a number"),
    ],
)
def test_a_malformed_cost_event_is_refused_with_its_field(event: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        cost_from_event({"type": "cost", **event})


def test_an_llm_event_is_unpriced_until_the_orchestrator_prices_it() -> None:
    cost = cost_from_event(
        {
            "type": "cost",
            "model": "m",
            "inputTokens": 10,
            "cacheWriteTokens": 3,
            "cacheWrite1hTokens": 2,
            "usd": 9,
        }
    )
    assert cost.amounts.unpriced and cost.amounts.effective_usd is None
    assert (cost.usage.cache_write_5m_tokens, cost.usage.cache_write_1h_tokens) == (3, 2)
    assert cost.details == {"reportedUsd": "9"}
