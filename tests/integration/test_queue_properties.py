"""Random interleavings of claims, completions, failures, renewals, expiries, reaps and reviews.

Whatever the order, after every step: at most one lease per task, held under the task's current fencing
token exactly while the task is assigned or running; fencing tokens never go down and equal the number of
runs; a stale writer changes nothing; a terminal task never changes again.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from company_agents import agents, companies, leases, tasks
from company_agents.db.database import sqlalchemy_url
from company_agents.errors import IllegalTransition, StaleFencingToken

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("claim"), st.integers(0, 1)),
        st.tuples(st.sampled_from(["complete", "fail", "renew", "progress"]), st.integers(0, 7)),
        st.tuples(st.sampled_from(["expire", "approve", "reject"]), st.integers(0, 1)),
        st.tuples(st.just("reap"), st.just(0)),
    ),
    min_size=1,
    max_size=14,
)


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


async def _scenario(url: str, ops: list[tuple[str, int]]) -> None:
    engine: AsyncEngine = create_async_engine(sqlalchemy_url(url))
    try:
        slug = f"p{uuid.uuid4().hex[:10]}"
        async with engine.begin() as conn:
            comp = await companies.create_company(conn, name=slug, slug=slug, team_names=["T"])
            ids = []
            for name in ("a", "b"):
                agent = await agents.hire_agent(
                    conn, company=slug, name=name, role="r", adapter="p", team="T"
                )
                ids.append(agent["id"])
            task_ids = [
                (await tasks.create_task(conn, company=slug, title=f"t{i}", team="T", max_attempts=2))["id"]
                for i in range(2)
            ]
        claims: list[leases.Claim] = []
        async with engine.connect() as conn:
            state = await _snapshot(conn, comp["id"])
            await conn.rollback()
        for op, arg in ops:
            async with engine.begin() as conn:
                before = await _snapshot(conn, comp["id"])
            try:
                async with engine.begin() as conn:
                    if op == "claim":
                        claims += await leases.claim(conn, agent_id=ids[arg], holder="p", lease_seconds=60)
                    elif op == "reap":
                        await leases.reap_expired(conn)
                    elif op == "expire":
                        await conn.execute(
                            text(
                                "UPDATE leases SET acquired_at = now() - interval '2 s', "
                                "renewed_at = now() - interval '2 s', expires_at = now() - interval '1 s' "
                                "WHERE task_id = :t"
                            ),
                            {"t": task_ids[arg]},
                        )
                    elif op in ("approve", "reject"):
                        if op == "approve":
                            await tasks.approve_task(conn, str(task_ids[arg]))
                        else:
                            await tasks.reject_task(conn, str(task_ids[arg]), feedback="again")
                    elif claims:
                        claim = claims[arg % len(claims)]
                        ident, fence = claim.identity(), claim.fencing_token
                        if op == "complete":
                            await leases.complete(conn, ident, fencing_token=fence, output=None)
                        elif op == "fail":
                            await leases.fail(conn, ident, fencing_token=fence, reason="x")
                        elif op == "renew":
                            await leases.renew(conn, ident, fencing_token=fence, lease_seconds=60)
                        else:
                            await leases.report_progress(
                                conn, ident, fencing_token=fence, checkpoint={"m": 1}
                            )
            except (StaleFencingToken, IllegalTransition):
                async with engine.begin() as conn:
                    assert await _snapshot(conn, comp["id"]) == before, f"a rejected {op} changed something"
            async with engine.begin() as conn:
                after = await _snapshot(conn, comp["id"])
            _check(state, after)
            state = after
    finally:
        await engine.dispose()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_random_interleavings_keep_the_invariants(db_url: str, ops: list[tuple[str, int]]) -> None:
    asyncio.run(_scenario(db_url, ops))
