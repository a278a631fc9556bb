"""Budgets on real PostgreSQL: defaults, reservations in the claim, breaches as costs land, overrides.

Costs are written with ``ledger.record`` and explicit amounts (``kind: tool``), then checked with
``budgets.check.after_cost`` in the same transaction, as the runner does.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from company_agents import leases, tasks
from company_agents.budgets import apply_override_decision, manage
from company_agents.budgets.check import Verdict, after_cost
from company_agents.costs import ledger
from company_agents.errors import Conflict
from tests.integration.queue_helpers import engine, make_world

__all__ = ["engine"]

R = Decimal("2")


def tool_cost(usd: Decimal | str) -> ledger.NewCost:
    amount = Decimal(usd)
    return ledger.NewCost(
        kind="tool",
        usage=ledger.Usage(),
        amounts=ledger.Amounts(amount, amount, amount, "reported:agent"),
    )


async def spend(engine: AsyncEngine, claim: leases.Claim, usd: Decimal | str) -> Verdict:
    async with engine.begin() as conn:
        recorded = await ledger.record(
            conn, claim.identity(), fencing_token=claim.fencing_token, cost=tool_cost(usd)
        )
        return await after_cost(
            conn, claim.identity(), fencing_token=claim.fencing_token, recorded=recorded, reservation_usd=R
        )


async def claim_one(engine: AsyncEngine, agent_id: UUID, *, limit: int = 1) -> list[leases.Claim]:
    async with engine.connect() as raw:
        conn = await raw.execution_options(isolation_level="AUTOCOMMIT")
        return await leases.claim(
            conn, agent_id=agent_id, holder="test", lease_seconds=60, limit=limit, reserve_usd=R
        )


async def queue(engine: AsyncEngine, n: int, **kw: Any) -> list[dict[str, Any]]:
    async with engine.begin() as conn:
        return [await tasks.create_task(conn, company="acme", title=f"t{i}", **kw) for i in range(n)]


async def set_budget(engine: AsyncEngine, **kw: Any) -> None:
    async with engine.begin() as conn:
        await manage.set_budget(conn, company="acme", **kw)


async def show(engine: AsyncEngine) -> dict[str, Any]:
    async with engine.connect() as conn:
        return await manage.show(conn, company="acme")


def budget_of(state: dict[str, Any], scope: str, name: str) -> dict[str, Any]:
    return next(b for b in state["budgets"] if b["scope"] == scope and b["name"] == name)


async def scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar_one()


async def test_defaults_company_500_teams_share_80_percent_agents_80(engine: AsyncEngine) -> None:
    await make_world(engine)
    state = await show(engine)
    assert budget_of(state, "company", "acme")["capUsd"] == 500
    # Two teams: equal shares of 80% of the company; 20% held in reserve for top-ups.
    assert budget_of(state, "team", "Engineering")["capUsd"] == 200
    assert budget_of(state, "team", "Design")["capUsd"] == 200
    assert budget_of(state, "agent", "ada")["capUsd"] == 80
    assert state["reserve"]["usd"] == 100 and state["reserve"]["remainingUsd"] == 100
    await set_budget(engine, usd=Decimal("1000"), fiscal_period="rolling-30d")
    await set_budget(engine, agent="ada", usd=Decimal("5"))
    await set_budget(engine, agent="ada", usd=Decimal("1.5"), task_default=True)
    state = await show(engine)
    assert state["fiscalPeriod"] == "rolling-30d"
    assert budget_of(state, "team", "Design")["capUsd"] == 400
    assert budget_of(state, "agent", "ada")["capUsd"] == 5
    await queue(engine, 1, agent="ada")
    assert budget_of(await show(engine), "task", "t0")["capUsd"] == Decimal("1.5")


async def test_a_topup_moves_reserve_into_a_team_and_stops_at_the_reserve(engine: AsyncEngine) -> None:
    await make_world(engine)
    async with engine.begin() as conn:
        done = await manage.topup(conn, company="acme", team="Design", usd=Decimal("30"), reason="launch")
    assert done["teamCapUsd"] == 230 and done["reserveLeftUsd"] == 70
    async with engine.begin() as conn:
        with pytest.raises(Conflict):
            await manage.topup(conn, company="acme", team="Design", usd=Decimal("70.01"))
    assert await scalar(engine, "SELECT count(*) FROM audit_events WHERE action = 'budget.topup'") == 1


async def test_a_claim_reserves_its_envelope_and_none_is_claimed_once_the_room_is_gone(
    engine: AsyncEngine,
) -> None:
    world = await make_world(engine, agent_names=("ada", "bob"), max_concurrent_tasks=4)
    await set_budget(engine, usd=Decimal("5"))  # the company: the tightest scope
    await set_budget(engine, team="Engineering", usd=Decimal("100"))
    await queue(engine, 6)
    ada, bob = world.agents["ada"]["id"], world.agents["bob"]["id"]
    claims = await claim_one(engine, ada, limit=4)
    # 5 USD of room: two full reservations and what is left; the fourth task is not claimed.
    assert sorted(c.reserved_usd for c in claims) == [Decimal(1), R, R]
    assert await claim_one(engine, bob) == []
    # A cost inside the envelope leaves the room as it was; completing a run gives back what is left.
    await spend(engine, claims[0], "0.5")
    assert await claim_one(engine, bob) == []
    async with engine.begin() as conn:
        first = claims[0]
        await leases.complete(conn, first.identity(), fencing_token=first.fencing_token, output=None)
    again = await claim_one(engine, bob)
    assert [c.reserved_usd for c in again] == [first.reserved_usd - Decimal("0.5")]


async def test_a_task_budget_caps_its_envelope_and_a_spent_task_is_not_claimed(engine: AsyncEngine) -> None:
    world = await make_world(engine, agent_names=("ada",))
    (task,) = await queue(engine, 1, agent="ada", budget_usd=Decimal("0.75"), max_attempts=3)
    ada = world.agents["ada"]["id"]
    (claim,) = await claim_one(engine, ada)
    assert claim.reserved_usd == Decimal("0.75")
    verdict = await spend(engine, claim, "0.8")
    assert verdict.level == "hard" and verdict.scope == "task" and verdict.stops
    async with engine.begin() as conn:
        await leases.block_for_budget(
            conn, claim.identity(), fencing_token=claim.fencing_token, reason="budget"
        )
        await tasks.requeue_task(conn, str(task["id"]))
    assert await claim_one(engine, ada) == []  # across attempts: the task has spent its budget


async def test_soft_once_then_hard_blocks_the_scope_and_asks_for_an_override(engine: AsyncEngine) -> None:
    world = await make_world(engine, agent_names=("ada", "bob"))
    await set_budget(engine, agent="ada", usd=Decimal("10"))
    await queue(engine, 1, agent="ada")
    (waiting,) = await queue(engine, 1, agent="ada")
    (other,) = await queue(engine, 1, agent="bob")
    ada = world.agents["ada"]["id"]
    (claim,) = await claim_one(engine, ada)
    assert (await spend(engine, claim, "8.5")).new_breaches[0].level == "soft"
    again = await spend(engine, claim, "0.1")
    assert again.level == "soft" and again.new_breaches == [] and not again.stops
    hard = await spend(engine, claim, "2")
    assert hard.level == "hard" and hard.scope == "agent" and hard.stops
    assert [b.level for b in hard.new_breaches] == ["hard"] and hard.runs == {claim.run_id: "hard"}
    actions = "SELECT array_agg(action ORDER BY id) FROM audit_events WHERE action LIKE 'budget.breach.%'"
    assert await scalar(engine, actions) == ["budget.breach.soft", "budget.breach.hard"]
    # The agent's queued task waits as blocked; bob's is untouched; one pending budget_override.
    statuses = "SELECT status || ':' || coalesce(blocked_reason, '') FROM tasks WHERE id = :id"
    assert await scalar(engine, statuses, id=waiting["id"]) == "blocked:budget"
    assert await scalar(engine, statuses, id=other["id"]) == "queued:"
    await spend(engine, claim, "0.01")  # still over: no second approval, no second breach
    async with engine.connect() as conn:
        (approval,) = (
            (await conn.execute(text("SELECT * FROM approvals WHERE kind = 'budget_override'")))
            .mappings()
            .all()
        )
    assert approval["status"] == "pending" and approval["details"]["scope"] == "agent"
    requested = "SELECT count(*) FROM audit_events WHERE action = 'approval.requested'"
    assert await scalar(engine, requested) == 1
    assert Decimal(approval["details"]["capUsd"]) == 10
    # The run ends blocked; nothing more is claimed for ada until the override.
    async with engine.begin() as conn:
        await leases.block_for_budget(
            conn, claim.identity(), fencing_token=claim.fencing_token, reason="budget"
        )
    assert await claim_one(engine, ada) == []
    denied = {**approval, "status": "denied"}
    async with engine.begin() as conn:
        assert (await apply_override_decision(conn, denied))["applied"] is False
    assert await claim_one(engine, ada) == []
    approved = {
        **approval,
        "status": "approved_with_edits",
        "edits": {"capUsd": "20"},
        "decided_by": "user:x",
    }
    async with engine.begin() as conn:
        result = await apply_override_decision(conn, approved)
    assert result["applied"] and result["capUsd"] == "20"
    assert {UUID(t) for t in result["requeued"]} == {claim.task_id, waiting["id"]}
    assert budget_of(await show(engine), "agent", "ada")["capUsd"] == 20
    resumed = await claim_one(engine, ada)
    assert len(resumed) == 1


async def test_a_company_overrun_is_catastrophic_and_stops_every_run_in_it(engine: AsyncEngine) -> None:
    world = await make_world(engine, agent_names=("ada", "bob"))
    await set_budget(engine, usd=Decimal("3"))
    await set_budget(engine, team="Engineering", usd=Decimal("100"))
    await queue(engine, 2)
    (a,) = await claim_one(engine, world.agents["ada"]["id"])
    (b,) = await claim_one(engine, world.agents["bob"]["id"])
    assert (await spend(engine, a, "3")).level == "hard"
    verdict = await spend(engine, a, "0.01")
    assert verdict.level == "catastrophic" and verdict.scope == "company"
    assert verdict.runs == {a.run_id: "catastrophic", b.run_id: "catastrophic"}
    actions = "SELECT array_agg(action ORDER BY id) FROM audit_events WHERE action LIKE 'budget.breach.%'"
    assert await scalar(engine, actions) == [
        "budget.breach.soft",
        "budget.breach.hard",
        "budget.breach.catastrophic",
    ]


async def test_apply_override_decision_refuses_a_bad_cap(engine: AsyncEngine) -> None:
    from company_agents.errors import InvalidInput

    world = await make_world(engine, agent_names=("ada",))
    row = {
        "id": None,
        "kind": "budget_override",
        "status": "approved_with_edits",
        "company_id": world.company_id,
        "details": {"scope": "agent", "scopeId": str(world.agents["ada"]["id"])},
        "edits": {"capUsd": "-1"},
    }
    async with engine.begin() as conn:
        with pytest.raises(InvalidInput):
            await apply_override_decision(conn, row)


async def test_a_workflow_budget_caps_its_tasks_envelopes_and_blocks_them_when_spent(
    engine: AsyncEngine,
) -> None:
    world = await make_world(engine, agent_names=("ada",), max_concurrent_tasks=2)
    first, second, third = await queue(engine, 3, agent="ada")
    workflow = UUID(int=7)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE tasks SET workflow_id = :w WHERE id IN (:a, :b)"),
            {"w": workflow, "a": first["id"], "b": second["id"]},
        )
        for n, task in enumerate((third, second, first)):  # claimed first first
            await conn.execute(
                text("UPDATE tasks SET priority = :p WHERE id = :id"), {"p": n, "id": task["id"]}
            )
        await manage.set_budget(conn, company="acme", workflow=workflow, usd=Decimal("1.5"))
    ada = world.agents["ada"]["id"]
    (claim,) = await claim_one(engine, ada)
    assert claim.task_id == first["id"] and claim.reserved_usd == Decimal("1.5")
    assert budget_of(await show(engine), "workflow", str(workflow))["reservedUsd"] == Decimal("1.5")
    verdict = await spend(engine, claim, "1.6")
    assert verdict.level == "hard" and verdict.scope == "workflow"
    # The workflow's other task waits; the task outside it is still claimable.
    statuses = "SELECT status || ':' || coalesce(blocked_reason, '') FROM tasks WHERE id = :id"
    assert await scalar(engine, statuses, id=second["id"]) == "blocked:budget"
    (other,) = await claim_one(engine, ada)
    assert other.task_id == third["id"]


@pytest.mark.parametrize("reserve", [Decimal(0), Decimal("-1")])
async def test_a_claim_refuses_a_reservation_that_is_not_positive_and_claims_nothing(
    engine: AsyncEngine, reserve: Decimal
) -> None:
    world = await make_world(engine, agent_names=("ada",))
    await set_budget(engine, usd=Decimal("5"))
    await queue(engine, 1)
    async with engine.connect() as raw:
        conn = await raw.execution_options(isolation_level="AUTOCOMMIT")
        with pytest.raises(ValueError, match="reserve_usd must be positive"):
            await leases.claim(
                conn, agent_id=world.agents["ada"]["id"], holder="test", lease_seconds=60, reserve_usd=reserve
            )
    assert [c.reserved_usd for c in await claim_one(engine, world.agents["ada"]["id"])] == [R]
