"""Completions bundled into one statement: each still fenced, each answered on its own, and the
database left exactly as the same completions one by one would leave it."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from company_agents import leases, tasks
from company_agents.errors import StaleFencingToken
from tests.integration.queue_helpers import engine, make_world

__all__ = ["engine"]


async def _claims(engine: AsyncEngine, agent_id: UUID, company: str, n: int) -> list[leases.Claim]:
    async with engine.begin() as conn:
        for i in range(n):
            await tasks.create_task(conn, company=company, title=f"task {i}", team="Engineering")
    async with engine.begin() as conn:
        return await leases.claim(conn, agent_id=agent_id, holder="test", lease_seconds=30, limit=n)


async def _state(engine: AsyncEngine, task_ids: list[UUID]) -> list[dict[str, Any]]:
    """What a completion writes, per task, in a form two runs can be compared on."""
    query = text(
        """
        SELECT t.id, t.status, t.output AS task_output, t.failure_reason, r.status AS run_status,
               r.exit_reason, r.output AS run_output, r.ended_at IS NOT NULL AS ended,
               (SELECT count(*) FROM leases l WHERE l.task_id = t.id) AS leases,
               (SELECT jsonb_agg(jsonb_build_object('actor', e.actor, 'payload', e.payload - 'runId')
                                 ORDER BY e.id)
                FROM audit_events e
                WHERE e.subject_id = t.id::text AND e.action = 'task.completed') AS events
        FROM tasks t JOIN runs r ON r.task_id = t.id
        WHERE t.id = ANY(:ids)
        """
    )
    async with engine.connect() as conn:
        rows = {r["id"]: dict(r) for r in (await conn.execute(query, {"ids": task_ids})).mappings()}
    # In the order asked, without the ids (two sets of tasks are compared).
    return [{k: v for k, v in rows[i].items() if k != "id"} for i in task_ids]


async def test_bundled_completions_write_what_single_ones_write(engine: AsyncEngine) -> None:
    world = await make_world(engine, agent_names=("ada", "bob"), max_concurrent_tasks=4)
    one_by_one = await _claims(engine, world.agents["ada"]["id"], "acme", 3)
    bundled = await _claims(engine, world.agents["bob"]["id"], "acme", 3)
    assert len(one_by_one) == len(bundled) == 3
    outputs = [{"n": i} for i in range(3)]
    async with engine.begin() as conn:
        single = [
            await leases.complete(conn, c.identity(), fencing_token=c.fencing_token, output=o, reasoning="r")
            for c, o in zip(one_by_one, outputs, strict=True)
        ]
    async with engine.connect() as raw:
        conn = await raw.execution_options(isolation_level="AUTOCOMMIT")
        many = await leases.complete_many(
            conn,
            [
                leases.Completion(c.identity(), c.fencing_token, o, "r")
                for c, o in zip(bundled, outputs, strict=True)
            ],
        )
    assert many == single  # the same answer, completion by completion
    a = await _state(engine, [c.task_id for c in one_by_one])
    b = await _state(engine, [c.task_id for c in bundled])
    for row in a + b:  # the actor names the agent: the only difference between the two
        for event in row["events"]:
            event.pop("actor")
    assert a == b
    assert [row["status"] for row in b] == ["review"] * 3 and all(row["leases"] == 0 for row in b)


async def test_a_stale_completion_in_a_bundle_changes_nothing_and_the_others_land(
    engine: AsyncEngine,
) -> None:
    world = await make_world(engine, agent_names=("ada",), max_concurrent_tasks=4)
    claims = await _claims(engine, world.agents["ada"]["id"], "acme", 3)
    stale, fresh = claims[1], [claims[0], claims[2]]
    async with engine.connect() as raw:
        conn = await raw.execution_options(isolation_level="AUTOCOMMIT")
        answers = await leases.complete_many(
            conn,
            [
                leases.Completion(claims[0].identity(), claims[0].fencing_token, "a"),
                leases.Completion(stale.identity(), stale.fencing_token + 1, "b"),  # a token it never had
                leases.Completion(claims[2].identity(), claims[2].fencing_token, "c"),
            ],
        )
        assert isinstance(answers[1], StaleFencingToken)
        assert all(isinstance(a, dict) and a["status"] == "review" for a in (answers[0], answers[2]))
        # The same again: every one is stale now, the first two because they are done.
        again = await leases.complete_many(
            conn, [leases.Completion(c.identity(), c.fencing_token, "x") for c in fresh]
        )
        assert all(isinstance(a, StaleFencingToken) for a in again)
    state = await _state(engine, [c.task_id for c in claims])
    assert [row["status"] for row in state] == ["review", "assigned", "review"]
    assert [row["leases"] for row in state] == [0, 1, 0]
    assert [len(row["events"] or []) for row in state] == [1, 0, 1]
    # The stale one still holds its lease and completes normally with its own token.
    async with engine.begin() as conn:
        done = await leases.complete(conn, stale.identity(), fencing_token=stale.fencing_token, output="b")
    assert done["status"] == "review"


async def test_a_bundle_names_each_task_once(engine: AsyncEngine) -> None:
    world = await make_world(engine, agent_names=("ada",))
    (claim,) = await _claims(engine, world.agents["ada"]["id"], "acme", 1)
    async with engine.connect() as conn:
        with pytest.raises(ValueError, match="one completion per task"):
            await leases.complete_many(
                conn, [leases.Completion(claim.identity(), claim.fencing_token, None)] * 2
            )
        assert await leases.complete_many(conn, []) == []
