"""The overshoot bound under concurrency (docs/budgets.md, "The overshoot bound").

Eight agents of one team with a small team budget claim, report costs of random sizes and complete,
all at once, each on its own connection, as the runner writes them (the entry, its counters and the
check in one transaction). A run stops at the first cost whose check says hard or catastrophic. The
team's spend may pass its cap only by the costs that landed once it was reached — one per run then in
flight, each that run's last — so never by more than eight of the largest cost. Soft and hard are each
recorded once, whatever the interleaving.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from company_agents import agents, companies, leases, tasks
from company_agents.budgets import manage
from company_agents.budgets.check import after_cost
from company_agents.costs import ledger
from company_agents.db.database import sqlalchemy_url
from tests.conftest import examples

AGENTS = 8
LARGEST = Decimal("1.00")
CENTS = st.integers(min_value=1, max_value=int(LARGEST * 100)).map(lambda c: Decimal(c) / 100)


def tool_cost(usd: Decimal) -> ledger.NewCost:
    return ledger.NewCost(
        kind="tool", usage=ledger.Usage(), amounts=ledger.Amounts(usd, usd, usd, "reported:agent")
    )


@dataclass
class Outcome:
    # The last cost of each run a check stopped, and every claim's envelope.
    stopped_last: list[Decimal] = field(default_factory=list)
    envelopes: list[Decimal] = field(default_factory=list)


async def _world(engine: AsyncEngine, cap: Decimal) -> tuple[str, list[uuid.UUID]]:
    slug = f"co-{uuid.uuid4().hex[:8]}"
    async with engine.begin() as conn:
        await companies.create_company(conn, name=slug, slug=slug, team_names=["T"])
        await manage.set_budget(conn, company=slug, team="T", usd=cap)
        ids = [
            (await agents.hire_agent(conn, company=slug, name=f"a{i}", role="w", adapter="p", team="T"))["id"]
            for i in range(AGENTS)
        ]
        for i in range(AGENTS * 3):
            await tasks.create_task(conn, company=slug, title=f"t{i}", team="T")
    return slug, ids


async def _agent(
    engine: AsyncEngine, agent_id: uuid.UUID, costs: list[Decimal], reserve: Decimal, out: Outcome
) -> None:
    """Claim, report up to three costs, complete; again, until nothing is claimed or a check stops it."""
    empty, i = 0, 0
    while empty < 3:
        async with engine.connect() as raw:
            conn = await raw.execution_options(isolation_level="AUTOCOMMIT")
            claims = await leases.claim(
                conn, agent_id=agent_id, holder="prop", lease_seconds=60, reserve_usd=reserve
            )
        if not claims:
            empty += 1
            await asyncio.sleep(0)
            continue
        empty = 0
        (claim,) = claims
        out.envelopes.append(claim.reserved_usd)
        ident = claim.identity()
        for _ in range(3):
            usd = costs[i % len(costs)]
            i += 1
            async with engine.begin() as conn:
                recorded = await ledger.record(
                    conn, ident, fencing_token=claim.fencing_token, cost=tool_cost(usd)
                )
                verdict = await after_cost(
                    conn, ident, fencing_token=claim.fencing_token, recorded=recorded, reservation_usd=reserve
                )
            if verdict.stops:
                out.stopped_last.append(usd)
                async with engine.begin() as conn:
                    await leases.block_for_budget(
                        conn, ident, fencing_token=claim.fencing_token, reason="budget"
                    )
                return
            if verdict.out_of_room:  # the task goes back; this agent claims again when there is room
                out.stopped_last.append(usd)
                async with engine.begin() as conn:
                    await leases.release(
                        conn, ident, fencing_token=claim.fencing_token, reason="room", exit_reason="budget"
                    )
                break
        else:
            async with engine.begin() as conn:
                await leases.complete(conn, ident, fencing_token=claim.fencing_token, output=None)


async def _scenario(db_url: str, cap: Decimal, reserve: Decimal, costs: list[list[Decimal]]) -> None:
    engine = create_async_engine(sqlalchemy_url(db_url), pool_size=AGENTS + 2)
    try:
        slug, ids = await _world(engine, cap)
        out = Outcome()
        await asyncio.gather(*(_agent(engine, a, costs[n], reserve, out) for n, a in enumerate(ids)))
        async with engine.connect() as conn:
            state = await manage.show(conn, company=slug)
            team = next(b for b in state["budgets"] if b["scope"] == "team")
            levels = (
                await conn.execute(
                    text(
                        "SELECT level, count(*) FROM budget_breaches "
                        "WHERE scope = 'team' AND scope_id = :id GROUP BY level"
                    ),
                    {"id": team["scopeId"]},
                )
            ).all()
    finally:
        await engine.dispose()
    spent: Decimal = team["spentUsd"]
    overshoot = max(spent - cap, Decimal(0))
    # The written bound: what landed once the cap was reached is one cost per run then in flight.
    assert overshoot < sum(out.stopped_last, Decimal(0)) or overshoot == 0
    assert overshoot <= AGENTS * LARGEST
    assert all(Decimal(0) < e <= reserve for e in out.envelopes)
    recorded: dict[str, int] = {str(level): int(n) for level, n in levels}
    assert all(n == 1 for n in recorded.values()), recorded
    if spent >= cap:
        assert {"soft", "hard"} <= set(recorded)


@pytest.mark.timeout(600)
@settings(
    deadline=None, max_examples=examples(10), suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cap=st.sampled_from([Decimal("1.5"), Decimal("3"), Decimal("6")]),
    reserve=st.sampled_from([Decimal("0.25"), Decimal("0.5"), Decimal("2")]),
    costs=st.lists(st.lists(CENTS, min_size=1, max_size=6), min_size=AGENTS, max_size=AGENTS),
)
def test_eight_concurrent_runs_never_pass_the_team_cap_by_more_than_the_bound(
    db_url: str, cap: Decimal, reserve: Decimal, costs: list[list[Decimal]]
) -> None:
    asyncio.run(_scenario(db_url, cap, reserve, costs))
