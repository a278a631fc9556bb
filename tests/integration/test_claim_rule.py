"""One source for each queue rule: the claim's SQL in db/sql/, the states from task_states.

- the functions in ``company_agents/db/sql/*.sql`` are what the database holds after migrating to head;
- the status lists in our SQL are generated from ``task_states``, never hand-written;
- the scheduler's candidate query and ``ca_claim_tasks`` agree on random data;
- the shared eligibility function is inlined: the claim still walks the partial index.
"""

from __future__ import annotations

import random
import re
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

import company_agents
from company_agents import agents, companies, leases, tasks
from company_agents.db.schema.agents import AGENT_STATUSES
from company_agents.runtime.scheduler import CANDIDATES_SQL
from company_agents.task_states import ACTIVE, ACTIVE_SQL, CLAIMABLE, TASK_STATUSES_ALL, sql_list
from tests.integration.queue_helpers import engine

__all__ = ["engine"]

SQL_DIR = resources.files("company_agents.db") / "sql"
SQL_FILES = sorted(p.name for p in SQL_DIR.iterdir() if p.name.endswith(".sql"))
SOURCE = Path(company_agents.__file__).parent


def _normal(sql: str) -> str:
    """Whitespace-insensitive and without ``--`` comments (pg_get_functiondef keeps only the body)."""
    return " ".join(re.sub(r"--[^\n]*", "", sql).split())


def _name(sql: str) -> str:
    match = re.search(r"CREATE OR REPLACE FUNCTION (\w+)\(", sql)
    assert match, "each db/sql file creates one function"
    return match.group(1)


def _definition(conn: psycopg.Connection[Any], name: str) -> tuple[str, str]:
    row = conn.execute(
        "SELECT pg_get_functiondef(p.oid), p.prosrc FROM pg_proc p "
        "WHERE p.proname = %s AND p.pronamespace = 'public'::regnamespace",
        (name,),
    ).fetchall()
    assert len(row) == 1, f"{name}: expected one function, found {len(row)}"
    return str(row[0][0]), str(row[0][1])


def test_there_are_sql_files() -> None:
    assert {"ca_claim_tasks.sql", "ca_task_claimable.sql", "ca_agent_can_claim.sql"} <= set(SQL_FILES)


@pytest.mark.parametrize("filename", SQL_FILES)
def test_db_sql_is_what_the_database_holds_after_migration(db_url: str, filename: str) -> None:
    sql = (SQL_DIR / filename).read_text()
    name = _name(sql)
    body = sql.split("$$")[1]
    with psycopg.connect(db_url) as conn:
        before, source = _definition(conn, name)
        assert _normal(source) == _normal(body), f"{filename}: its body is not the migrated function's"
        # The whole definition too (arguments, result, language, volatility): creating it again from
        # the file must leave pg_get_functiondef unchanged.
        conn.execute(sql)  # a static file of ours
        after, _ = _definition(conn, name)
        conn.rollback()
    assert _normal(after) == _normal(before), f"{filename} differs from the function after migration"


def test_status_lists_in_sql_are_never_hand_written() -> None:
    """Outside the (frozen) migrations, a status list in SQL text comes from task_states."""
    pattern = re.compile(r"status\s+(?:NOT\s+)?IN\s*\(\s*'", re.IGNORECASE)
    offenders = [
        f"{path.relative_to(SOURCE)}:{n}"
        for path in SOURCE.rglob("*.py")
        if "migrations" not in path.parts
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []
    assert ACTIVE_SQL == "('assigned', 'running')" and f"IN {ACTIVE_SQL}" in leases.RENEW_SQL
    for sql in (leases.COMPLETE_SQL, leases.FAIL_SQL, leases.REAP_SQL, leases.PROGRESS_SQL):
        assert f"status IN {sql_list(ACTIVE)}" in sql
    with pytest.raises(ValueError, match="not task states"):
        sql_list(("queued", "nonsense"))


def test_the_eligibility_functions_name_only_known_states() -> None:
    task_rule = (SQL_DIR / "ca_task_claimable.sql").read_text().split("$$")[1]
    assert set(re.findall(r"t\.status = '(\w+)'", task_rule)) == set(CLAIMABLE)
    assert set(CLAIMABLE) <= set(TASK_STATUSES_ALL)
    agent_rule = (SQL_DIR / "ca_agent_can_claim.sql").read_text().split("$$")[1]
    listed = re.search(r"p_agent_status IN \(([^)]*)\)", agent_rule)
    assert listed and set(re.findall(r"'(\w+)'", listed.group(1))) <= set(AGENT_STATUSES)


async def test_the_shared_rule_is_inlined_so_the_partial_index_serves_the_claim(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(
            r[0]
            for r in await conn.execute(
                text(
                    "EXPLAIN SELECT t.id FROM tasks t "
                    "WHERE ca_task_claimable(t, gen_random_uuid(), gen_random_uuid(), NULL) "
                    "ORDER BY t.priority DESC, t.created_at LIMIT 1 FOR UPDATE SKIP LOCKED"
                )
            )
        )
        await conn.rollback()
    assert "ix_tasks_claimable" in plan, plan


async def _random_world(engine: AsyncEngine, rng: random.Random) -> list[UUID]:
    """Two companies (one maybe archived), agents in random states and teams, random tasks."""
    agent_ids: list[UUID] = []
    async with engine.begin() as conn:
        for c in range(2):
            slug = f"co{c}"
            await companies.create_company(conn, name=slug, slug=slug, team_names=["A", "B"])
            for i in range(4):
                agent = await agents.hire_agent(
                    conn,
                    company=slug,
                    name=f"ag{c}{i}",
                    role="r",
                    adapter="process",
                    team=rng.choice(["A", "B"]),
                    max_concurrent_tasks=rng.choice([1, 2]),
                )
                agent_ids.append(agent["id"])
            for i in range(10):
                who = rng.choice(["agent", "team", "anyone"])
                task = await tasks.create_task(
                    conn,
                    company=slug,
                    title=f"t{c}{i}",
                    agent=f"ag{c}{rng.randrange(4)}" if who == "agent" else None,
                    team=rng.choice(["A", "B"]) if who == "team" else None,
                )
                status = rng.choice([*TASK_STATUSES_ALL, *["queued"] * 10])
                run_after = rng.choice([None, timedelta(minutes=-1), timedelta(minutes=5)])
                await conn.execute(
                    text("UPDATE tasks SET status = :s, run_after = now() + :d WHERE id = :id"),
                    {"s": status, "d": run_after, "id": task["id"]},
                )
        for agent_id in agent_ids:
            status = rng.choice([*AGENT_STATUSES, "idle", "idle", "running", "running"])
            await conn.execute(
                text("UPDATE agents SET status = :s WHERE id = :id"), {"s": status, "id": agent_id}
            )
        if rng.random() < 0.3:
            await conn.execute(text("UPDATE companies SET status = 'archived' WHERE slug = 'co1'"))
    # Some agents already hold a task (capacity is part of the rule).
    for agent_id in rng.sample(agent_ids, 3):
        async with engine.begin() as conn:
            await leases.claim(conn, agent_id=agent_id, holder="setup", lease_seconds=60)
    return agent_ids


@pytest.mark.parametrize("seed", range(4))
async def test_the_scheduler_offers_exactly_the_agents_a_claim_would_serve(
    engine: AsyncEngine, seed: int
) -> None:
    rng = random.Random(seed)
    agent_ids = await _random_world(engine, rng)
    async with engine.connect() as conn:
        offered = {r.id for r in await conn.execute(CANDIDATES_SQL, {"adapters": ["process"], "limit": 100})}
        await conn.rollback()
    served = set()
    for agent_id in agent_ids:
        async with engine.connect() as conn:
            await conn.begin()
            if await leases.claim(conn, agent_id=agent_id, holder="probe", lease_seconds=60):
                served.add(agent_id)
            await conn.rollback()  # each agent is asked about the same state
    assert offered == served
