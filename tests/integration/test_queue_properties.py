"""Random schedules of claims, completions, failures, renewals, expiries, reaps and reviews, run
concurrently.

A schedule is a list of steps; each step runs one to three operations at the same time, each in its
own transaction on its own connection, released together so their statements interleave in the
server. Whatever the schedule, after every step: at most one lease per task, held under the task's
current fencing token exactly while the task is assigned or running; fencing tokens never go down and
equal the number of runs; a step whose every operation was refused (stale writer, illegal transition)
changes nothing; a terminal task never changes again. Deadlocks between the operations are retried,
as the product retries its writes.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from company_agents import agents, companies, leases, tasks
from company_agents.db.database import sqlalchemy_url
from company_agents.db.retry import retry_transient
from company_agents.errors import IllegalTransition, StaleFencingToken

OP = st.one_of(
    st.tuples(st.just("claim"), st.integers(0, 1)),
    st.tuples(st.sampled_from(["complete", "fail", "renew", "progress"]), st.integers(0, 7)),
    st.tuples(st.sampled_from(["expire", "approve", "reject"]), st.integers(0, 1)),
    st.tuples(st.just("reap"), st.just(0)),
)
# Steps of 1-3 concurrent operations; singletons keep the sequential cases (and their exact checks).
SCHEDULES = st.lists(st.lists(OP, min_size=1, max_size=3), min_size=1, max_size=8)
Op = tuple[str, int]


async def _snapshot(conn: Any, company_id: uuid.UUID) -> dict[uuid.UUID, dict[str, Any]]:
    rows = (
        (
            await conn.execute(
                text(
                    "SELECT t.id, t.status, t.fencing_token, t.attempt, "
                    "(SELECT count(*) FROM leases l WHERE l.task_id = t.id) AS leases, "
                    "(SELECT max(l.fencing_token) FROM leases l WHERE l.task_id = t.id) AS lease_fence, "
                    "(SELECT count(*) FROM runs r WHERE r.task_id = t.id) AS runs, "
                    "(SELECT count(*) FROM runs r WHERE r.task_id = t.id AND r.status = 'running') "
                    "AS running_runs "
                    "FROM tasks t WHERE t.company_id = :c"
                ),
                {"c": company_id},
            )
        )
        .mappings()
        .all()
    )
    return {r["id"]: dict(r) for r in rows}


def _check(before: dict[uuid.UUID, dict[str, Any]], after: dict[uuid.UUID, dict[str, Any]]) -> None:
    for task_id, row in after.items():
        active = row["status"] in ("assigned", "running")
        assert row["leases"] == (1 if active else 0), row
        assert row["running_runs"] == row["leases"], row
        if active:
            assert row["lease_fence"] == row["fencing_token"], row
        assert row["fencing_token"] == row["runs"] == row["attempt"], row
        old = before.get(task_id)
        if old is not None:
            assert row["fencing_token"] >= old["fencing_token"]
            if old["status"] in ("done", "failed", "cancelled"):
                assert row == old, "a terminal task changed"


class World:
    """One company's two agents and two tasks, and the claims made so far."""

    def __init__(self, company_id: uuid.UUID, agent_ids: list[uuid.UUID], task_ids: list[uuid.UUID]) -> None:
        self.company_id, self.agent_ids, self.task_ids = company_id, agent_ids, task_ids
        self.claims: list[leases.Claim] = []


async def _apply(
    conn: AsyncConnection, world: World, claims: list[leases.Claim], op: Op
) -> list[leases.Claim]:
    """Run one operation; returns the claims it made."""
    name, arg = op
    if name == "claim":
        return await leases.claim(conn, agent_id=world.agent_ids[arg], holder="p", lease_seconds=60)
    if name == "reap":
        await leases.reap_expired(conn)
    elif name == "expire":
        await conn.execute(
            text(
                "UPDATE leases SET acquired_at = now() - interval '2 s', "
                "renewed_at = now() - interval '2 s', expires_at = now() - interval '1 s' "
                "WHERE task_id = :t"
            ),
            {"t": world.task_ids[arg]},
        )
    elif name == "approve":
        await tasks.approve_task(conn, str(world.task_ids[arg]))
    elif name == "reject":
        await tasks.reject_task(conn, str(world.task_ids[arg]), feedback="again")
    elif claims:
        claim = claims[arg % len(claims)]
        ident, fence = claim.identity(), claim.fencing_token
        if name == "complete":
            await leases.complete(conn, ident, fencing_token=fence, output=None)
        elif name == "fail":
            await leases.fail(conn, ident, fencing_token=fence, reason="x")
        elif name == "renew":
            await leases.renew(conn, ident, fencing_token=fence, lease_seconds=60)
        else:
            await leases.report_progress(conn, ident, fencing_token=fence, checkpoint={"m": 1})
    return []


async def _step(engine: AsyncEngine, world: World, ops: list[Op]) -> list[bool]:
    """Run ``ops`` at the same time, each in its own transaction; True for each one that was refused.

    A deadlock or serialization failure rolls the whole transaction back and is retried, as the product
    retries its writes (``db.retry``); the invariants must hold whatever the outcome.
    """
    claims = list(world.claims)  # what the operations of this step may refer to
    ready = asyncio.Barrier(len(ops))

    async def one(op: Op) -> tuple[bool, list[leases.Claim]]:
        first = True

        async def attempt() -> list[leases.Claim]:
            nonlocal first
            async with engine.begin() as conn:
                if first:  # connected and in a transaction: now all go at once
                    await conn.execute(text("SELECT 1"))
                    await ready.wait()
                    first = False
                return await _apply(conn, world, claims, op)

        try:
            return False, await retry_transient(attempt, what=op[0])
        except (StaleFencingToken, IllegalTransition):
            return True, []

    results = await asyncio.gather(*(one(op) for op in ops))
    for _, made in results:
        world.claims += made
    return [refused for refused, _ in results]


async def _scenario(url: str, schedule: list[list[Op]]) -> None:
    # One connection per concurrent operation, plus one for the snapshots.
    engine: AsyncEngine = create_async_engine(sqlalchemy_url(url), pool_size=4, max_overflow=0)
    try:
        slug = f"p{uuid.uuid4().hex[:10]}"
        async with engine.begin() as conn:
            comp = await companies.create_company(conn, name=slug, slug=slug, team_names=["T"])
            agent_ids = []
            for name in ("a", "b"):
                agent = await agents.hire_agent(
                    conn, company=slug, name=name, role="r", adapter="p", team="T"
                )
                agent_ids.append(agent["id"])
            task_ids = [
                (await tasks.create_task(conn, company=slug, title=f"t{i}", team="T", max_attempts=2))["id"]
                for i in range(2)
            ]
        world = World(comp["id"], agent_ids, task_ids)
        async with engine.begin() as conn:
            state = await _snapshot(conn, world.company_id)
        for ops in schedule:
            refused = await _step(engine, world, ops)
            async with engine.begin() as conn:
                after = await _snapshot(conn, world.company_id)
            if all(refused):
                assert after == state, f"refused {ops} changed something"
            _check(state, after)
            state = after
    finally:
        await engine.dispose()


# The example count comes from the hypothesis profile (tests/conftest.py): 300 in CI, fewer locally.
# 300 schedules take minutes on a busy machine: more than the default per-test timeout.
@pytest.mark.timeout(900)
@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schedule=SCHEDULES)
def test_random_schedules_of_concurrent_operations_keep_the_invariants(
    db_url: str, schedule: list[list[Op]]
) -> None:
    asyncio.run(_scenario(db_url, schedule))
