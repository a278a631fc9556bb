"""Roll-ups, adjustments and the counter rebuild on real PostgreSQL, against sums over the ledger."""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal
from uuid import UUID

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from company_agents import leases, tasks
from company_agents.costs import ledger, report
from company_agents.costs.adjust import adjust
from company_agents.costs.events import cost_from_event
from company_agents.costs.rebuild import rebuild
from company_agents.errors import InvalidInput
from tests.integration.queue_helpers import engine, make_world

__all__ = ["engine"]

TZ = "America/New_York"
WINDOWS = [
    (None, None),
    ("1h", None),
    ("24h", None),
    ("7d", None),
    ("30d", None),
    ("today", None),
    ("yesterday", None),
    ("this_week", None),
    ("this_month", None),
    ("this_quarter", None),
    ("50d", "2d"),
]

INSERT_SQL = text(
    "INSERT INTO cost_entries (company_id, team_id, agent_id, kind, model, billing, input_tokens,"
    " output_tokens, cache_read_tokens, cache_write_5m_tokens, billed_usd, imputed_usd, effective_usd,"
    " price_source, unpriced, created_at)"
    " VALUES (:company_id, :team_id, :agent_id, :kind, 'm', 'api', :tin, :tout, :tcr, :tcw, :usd, :usd,"
    " :usd, :source, :unpriced, now() - :ago)"
)


async def _ledger_sum(
    conn: AsyncConnection, column: str, scope_id: UUID, start: object, end: object
) -> Decimal:
    value = (
        await conn.execute(
            text(
                f"SELECT coalesce(sum(effective_usd), 0) FROM cost_entries WHERE {column} = :id"
                " AND created_at >= :start AND created_at < :end"
            ),
            {"id": scope_id, "start": start, "end": end},
        )
    ).scalar()
    assert isinstance(value, Decimal)
    return value


async def test_every_window_agrees_with_a_sum_over_the_ledger(engine: AsyncEngine) -> None:
    world = await make_world(engine, agent_names=("ada", "bob", "cy"))
    rng = random.Random(11)
    agents = list(world.agents.values())
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE companies SET time_zone = :tz, budget_usd = 400"), {"tz": TZ})
        for _ in range(400):
            agent = rng.choice(agents)
            unpriced = rng.random() < 0.05
            await conn.execute(
                INSERT_SQL,
                {
                    "company_id": world.company_id,
                    "team_id": agent["team_id"],
                    "agent_id": agent["id"],
                    "kind": rng.choice(["llm", "llm", "tool", "runtime"]),
                    "tin": rng.randrange(1000),
                    "tout": rng.randrange(1000),
                    "tcr": rng.randrange(100),
                    "tcw": rng.randrange(100),
                    "usd": None if unpriced else Decimal(rng.randrange(1, 10**6)) / 10**6,
                    "source": None if unpriced else "test",
                    "unpriced": unpriced,
                    # Mostly recent, so the short windows hold entries too; some up to 100 days old.
                    "ago": timedelta(minutes=rng.choice([rng.randrange(180), rng.randrange(144_000)])),
                },
            )
    async with engine.begin() as conn:
        repaired = await rebuild(conn, company_id=world.company_id)
    assert repaired["drifted"] == repaired["counters"] > 0  # written around the ledger: all missing
    async with engine.begin() as conn:
        assert (await rebuild(conn, check_only=True))["drifted"] == 0

    async with engine.connect() as conn:
        company = await report.resolve_target(conn, "acme")
        team = await report.resolve_target(conn, "acme", team="Engineering")
        one = await report.resolve_target(conn, "acme", agent="bob")
        for since, until in WINDOWS:
            for target, column in ((company, "company_id"), (team, "team_id"), (one, "agent_id")):
                out = await report.show(conn, target, since=since, until=until)
                start, end = out["period"]["start"], out["period"]["end"]
                expected = await _ledger_sum(conn, column, target.scope_id, start, end)
                assert Decimal(out["total"]["usd"]) == expected, (since, until, target.scope)
                assert sum(Decimal(d["usd"]) for d in out["trend"]["perDay"]) == expected
                if target.scope == "company":
                    assert sum(Decimal(a["usd"]) for a in out["byAgent"]) == expected
                    assert sum(Decimal(t["usd"]) for t in out["byTeam"]) == expected
                br = out["breakdown"]
                assert sum(Decimal(br[k]["usd"]) for k in ("llm", "tools", "runtimeServices")) == expected
        month = await report.show(conn, company)
    assert month["forecast"] is not None and Decimal(month["forecast"]["low"]) <= Decimal(
        month["forecast"]["usd"]
    )
    assert Decimal(month["forecast"]["usd"]) <= Decimal(month["forecast"]["high"])
    assert month["period"]["label"].startswith("fiscal period")
    spent = Decimal(month["total"]["usd"])
    assert month["budget"] == {
        "usd": "400.00000000",
        "remaining": str(Decimal("400.00000000") - spent),
        "percentUsed": str((spent / 400 * 100).quantize(Decimal("0.01"))),
    }


async def _claimed(engine: AsyncEngine) -> leases.Claim:
    world = await make_world(engine, agent_names=("ada",))
    async with engine.begin() as conn:
        await tasks.create_task(conn, company="acme", title="t", agent="ada", max_attempts=2)
    async with engine.begin() as conn:
        (claim,) = await leases.claim(
            conn, agent_id=world.agents["ada"]["id"], holder="test", lease_seconds=60
        )
    return claim


async def test_adjustments_and_a_random_workload_leave_no_drift_and_drift_is_found(
    engine: AsyncEngine,
) -> None:
    claim = await _claimed(engine)
    rng = random.Random(5)
    recorded: list[ledger.RecordedCost] = []
    async with engine.begin() as conn:
        for n in range(60):
            if rng.random() < 0.3:
                event = {"model": "in-house", "inputTokens": rng.randrange(500)}  # unpriced
            else:
                event = {"kind": "tool", "usd": str(Decimal(rng.randrange(1, 5000)) / 1000), "name": "x"}
            cost = cost_from_event({"type": "cost", "id": f"k{n}", **event})
            recorded.append(
                await ledger.record(conn, claim.identity(), fencing_token=claim.fencing_token, cost=cost)
            )
    unpriced = [r for r in recorded if r.unpriced]
    priced = [r for r in recorded if not r.unpriced]
    async with engine.begin() as conn:
        first = await adjust(conn, unpriced[0].id, Decimal("0.42"), reason="priced by hand")
        second = await adjust(conn, unpriced[0].id, Decimal("-0.02"), reason="a little less")
        refund = await adjust(conn, priced[0].id, -(priced[0].effective_usd or Decimal(0)), reason="refund")
        with pytest.raises(InvalidInput, match="below zero"):
            await adjust(conn, priced[0].id, Decimal("-0.01"), reason="too much")
        with pytest.raises(InvalidInput, match="original entry"):
            await adjust(conn, refund["id"], Decimal("1"), reason="x")
    assert first["reprices"] and not second["reprices"] and not refund["reprices"]

    async with engine.begin() as conn:
        assert (await rebuild(conn, check_only=True))["drifted"] == 0
        target = await report.resolve_target(conn, "acme")
        out = await report.show(conn, target, since="today")
        events = (
            await conn.execute(text("SELECT count(*) FROM audit_events WHERE action = 'cost.adjusted'"))
        ).scalar()
    expected = sum((r.effective_usd or Decimal(0) for r in priced[1:]), Decimal("0.40"))
    assert Decimal(out["total"]["usd"]) == expected and events == 3
    assert out["unpriced"]["entries"] == len(unpriced) - 1
    assert {m["model"] for m in out["unpriced"]["models"]} == {"in-house"}
    assert out["unpriced"]["models"][0]["entries"] == len(unpriced) - 1

    async with engine.begin() as conn:
        await conn.execute(text("UPDATE cost_counters SET usd = usd + 1 WHERE scope = 'agent'"))
    async with engine.begin() as conn:
        found = await rebuild(conn, check_only=True)
        assert found["drifted"] == 1 and found["drift"][0]["scope"] == "agent"
        assert (await rebuild(conn))["repaired"] == 1
        assert (await rebuild(conn, check_only=True))["drifted"] == 0
