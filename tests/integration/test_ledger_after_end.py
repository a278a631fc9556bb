"""A cost that arrives after its run ended (an agent CLI reports its last request's usage after the
``mark_complete`` it made over MCP): recorded once, against that run, by that attempt's token only."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from company_agents import leases, tasks
from company_agents.costs import ledger
from company_agents.errors import InvalidInput, StaleFencingToken
from tests.integration.queue_helpers import engine, make_world

__all__ = ["engine"]


def _llm(key: str | None) -> ledger.NewCost:
    return ledger.NewCost(
        kind="llm",
        usage=ledger.Usage(input_tokens=1200, output_tokens=20, cache_read_tokens=500),
        amounts=ledger.Amounts.unpriced_usage(),
        model="claude-sonnet-4-5",
        idempotency_key=key,
    )


async def _claimed(engine: AsyncEngine) -> leases.Claim:
    world = await make_world(engine, agent_names=("ada",))
    async with engine.begin() as conn:
        await tasks.create_task(conn, company="acme", title="t", agent="ada", max_attempts=2)
    async with engine.begin() as conn:
        (claim,) = await leases.claim(
            conn, agent_id=world.agents["ada"]["id"], holder="test", lease_seconds=60
        )
    return claim


async def test_a_cost_after_the_run_completed_is_recorded_once(engine: AsyncEngine) -> None:
    claim = await _claimed(engine)
    ident, fence = claim.identity(), claim.fencing_token
    async with engine.begin() as conn:
        # While the run holds its lease this path is not the one to take.
        with pytest.raises(StaleFencingToken):
            await ledger.record_after_end(conn, ident, fencing_token=fence, cost=_llm("m2"))
    async with engine.begin() as conn:
        await leases.complete(conn, ident, fencing_token=fence, output="done")
    async with engine.begin() as conn:
        with pytest.raises(StaleFencingToken):  # the normal path is fenced off now
            await ledger.record(conn, ident, fencing_token=fence, cost=_llm("m2"))
    async with engine.begin() as conn:
        first = await ledger.record_after_end(conn, ident, fencing_token=fence, cost=_llm("m2"))
        again = await ledger.record_after_end(conn, ident, fencing_token=fence, cost=_llm("m2"))
    assert not first.duplicate and again.duplicate and again.id == first.id
    assert first.run_id == claim.run_id
    async with engine.connect() as conn:
        counted = (
            await conn.execute(
                text(
                    "SELECT entries, input_tokens FROM cost_counters WHERE scope = 'task' AND scope_id = :t"
                ),
                {"t": claim.task_id},
            )
        ).all()
    assert counted == [(1, 1200)]


async def test_another_token_or_a_keyless_cost_is_refused_after_the_end(engine: AsyncEngine) -> None:
    claim = await _claimed(engine)
    ident, fence = claim.identity(), claim.fencing_token
    async with engine.begin() as conn:
        await leases.complete(conn, ident, fencing_token=fence, output="done")
    async with engine.begin() as conn:
        with pytest.raises(StaleFencingToken):
            await ledger.record_after_end(
                conn, replace(ident, token_hash="not-the-hash"), fencing_token=fence, cost=_llm("k")
            )
    async with engine.begin() as conn:
        with pytest.raises(StaleFencingToken):
            await ledger.record_after_end(conn, ident, fencing_token=fence + 1, cost=_llm("k"))
    async with engine.begin() as conn:
        with pytest.raises(InvalidInput):
            await ledger.record_after_end(conn, ident, fencing_token=fence, cost=_llm(None))
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM cost_entries"))).scalar() == 0
