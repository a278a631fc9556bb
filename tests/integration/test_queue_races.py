"""Zombie writers, the reaper racing a completion (both orders), claim rules, and many claimers."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from uuid import UUID

import httpx
import pytest
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from company_agents import agents, companies, leases, tasks
from company_agents.db.schema import leases as leases_table
from company_agents.errors import StaleFencingToken
from tests.integration.queue_helpers import engine, make_world, tool_url

__all__ = ["engine", "tool_url"]

NO_WAIT = leases.RetryBackoff(0, 0)  # retry backoff has its own tests (test_retry_backoff.py)


async def _claim(
    engine: AsyncEngine, agent_id: UUID, *, lease_seconds: float = 30, limit: int = 1
) -> list[leases.Claim]:
    async with engine.begin() as conn:
        return await leases.claim(
            conn,
            agent_id=agent_id,
            holder="test",
            lease_seconds=lease_seconds,
            limit=limit,
        )


async def _expire(engine: AsyncEngine, task_id: object) -> None:
    """Move a lease's expiry into the past (what time would do; the reaper compares with now())."""
    async with engine.begin() as conn:
        await conn.execute(
            update(leases_table)
            .where(leases_table.c.task_id == task_id)
            .values(
                acquired_at=text("now() - interval '2 seconds'"),
                renewed_at=text("now() - interval '2 seconds'"),
                expires_at=text("now() - interval '1 second'"),
            )
        )


def _post(base: str, tool: str, token: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(
        f"{base}/tools/{tool}", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


async def test_zombie_writer_is_fenced_off_after_the_reaper_requeues(
    engine: AsyncEngine, tool_url: str
) -> None:
    world = await make_world(engine)
    async with engine.begin() as conn:
        task = await tasks.create_task(conn, company="acme", title="Long job", team="Engineering")
    (zombie,) = await _claim(engine, world.agents["ada"]["id"])
    # The holder is paused (SIGSTOP, a GC pause…) past its lease window.
    await _expire(engine, task["id"])
    async with engine.begin() as conn:
        reaped = await leases.reap_expired(conn, backoff=NO_WAIT)
    assert [(r["task_id"], r["status"]) for r in reaped] == [(task["id"], "queued")]
    (fresh,) = await _claim(engine, world.agents["bob"]["id"])
    assert fresh.task_id == task["id"] and fresh.fencing_token == zombie.fencing_token + 1
    # The zombie wakes up and tries every write it knows.
    for tool, body in [
        ("mark_complete", {"output": "zombie output"}),
        ("report_progress", {"message": "still here"}),
        ("renew_lease", {}),
        ("mark_failed", {"reason": "zombie"}),
        ("request_handoff", {"reason": "zombie"}),
    ]:
        resp = _post(tool_url, tool, zombie.lease_token, {"fencingToken": zombie.fencing_token, **body})
        assert resp.status_code == 409, (tool, resp.text)
        assert resp.json()["error"]["code"] == "stale_fencing_token"
    # Even with the current token number, the zombie's lease token does not act for the new attempt.
    forged = _post(
        tool_url, "mark_complete", zombie.lease_token, {"fencingToken": fresh.fencing_token, "output": 1}
    )
    assert forged.status_code == 409
    ok = _post(
        tool_url, "mark_complete", fresh.lease_token, {"fencingToken": fresh.fencing_token, "output": "real"}
    )
    assert ok.status_code == 200
    async with engine.connect() as conn:
        completions = (
            await conn.execute(
                text("SELECT count(*) FROM audit_events WHERE action = 'task.completed' AND subject_id = :t"),
                {"t": str(task["id"])},
            )
        ).scalar_one()
        rejected = (
            await conn.execute(
                text("SELECT count(*) FROM audit_events WHERE action = 'lease.stale_write_rejected'")
            )
        ).scalar_one()
        run_states = (
            await conn.execute(
                text("SELECT attempt, status, exit_reason FROM runs WHERE task_id = :t ORDER BY attempt"),
                {"t": task["id"]},
            )
        ).all()
        row = await tasks.get_task(conn, str(task["id"]))
    assert completions == 1
    # Six rejections, five rows: the forged mark_complete repeats (run, tool) within the minute.
    assert rejected == 5
    assert [tuple(r) for r in run_states] == [(1, "failed", "lease_expired"), (2, "succeeded", "complete")]
    assert row["output"]["output"] == "real"


@pytest.mark.parametrize("first", ["completion", "reaper"])
async def test_completion_and_reaper_interleaved(engine: AsyncEngine, first: str) -> None:
    """Force both orders with two transactions: a finished task is never resurrected; no double claim."""
    world = await make_world(engine)
    async with engine.begin() as conn:
        task = await tasks.create_task(conn, company="acme", title="Race", agent="ada")
    (claim,) = await _claim(engine, world.agents["ada"]["id"])
    await _expire(engine, task["id"])
    async with engine.connect() as conn:
        ident = await leases.authenticate(conn, claim.lease_token)
        await conn.rollback()

    async def complete(conn_engine: AsyncEngine, hold: asyncio.Event | None, go: asyncio.Event | None) -> str:
        async with conn_engine.connect() as conn:
            trans = await conn.begin()
            try:
                await leases.complete(conn, ident, fencing_token=claim.fencing_token, output="done")
            except StaleFencingToken:
                await trans.rollback()
                return "stale"
            if hold is not None and go is not None:
                hold.set()
                await go.wait()
            await trans.commit()
            return "completed"

    async def reap(hold: asyncio.Event | None, go: asyncio.Event | None) -> int:
        async with engine.connect() as conn:
            trans = await conn.begin()
            reaped = await leases.reap_expired(conn)
            if hold is not None and go is not None:
                hold.set()
                await go.wait()
            await trans.commit()
            return len(reaped)

    held, go = asyncio.Event(), asyncio.Event()
    if first == "completion":
        winner = asyncio.create_task(complete(engine, held, go))
        await held.wait()  # the completion holds its lock on the lease, uncommitted
        # SKIP LOCKED: the reaper passes over a lease someone is finishing right now, without waiting.
        assert await reap(None, None) == 0
        go.set()
        assert await winner == "completed"
        expected = "review"
    else:
        winner_r = asyncio.create_task(reap(held, go))
        await held.wait()
        loser_c = asyncio.create_task(complete(engine, None, None))
        await asyncio.sleep(0.3)
        assert not loser_c.done(), "the completion must wait for the reaper's row lock"
        go.set()
        assert await winner_r == 1
        assert await loser_c == "stale"
        expected = "queued"
    async with engine.connect() as conn:
        assert (await tasks.get_task(conn, str(task["id"])))["status"] == expected
        assert (await conn.execute(text("SELECT count(*) FROM leases"))).scalar_one() == 0
    # The reaper never resurrects a finished task on a later pass either.
    async with engine.begin() as conn:
        assert await leases.reap_expired(conn) == []


async def test_renewal_racing_the_reaper_keeps_the_lease(engine: AsyncEngine) -> None:
    world = await make_world(engine)
    async with engine.begin() as conn:
        task = await tasks.create_task(conn, company="acme", title="Renew me", agent="ada")
    (claim,) = await _claim(engine, world.agents["ada"]["id"], lease_seconds=30)
    async with engine.begin() as conn:
        ident = await leases.authenticate(conn, claim.lease_token)
        await leases.renew(conn, ident, fencing_token=claim.fencing_token, lease_seconds=30)
        assert await leases.reap_expired(conn) == []
    assert (await _claim(engine, world.agents["bob"]["id"])) == []
    async with engine.connect() as conn:
        assert (await tasks.get_task(conn, str(task["id"])))["status"] == "assigned"


async def test_retry_limit_fails_the_task_after_the_last_expired_lease(engine: AsyncEngine) -> None:
    world = await make_world(engine)
    async with engine.begin() as conn:
        task = await tasks.create_task(conn, company="acme", title="Doomed", agent="ada", max_attempts=2)
    for expected in ("queued", "failed"):
        (claim,) = await _claim(engine, world.agents["ada"]["id"])
        await _expire(engine, claim.task_id)
        async with engine.begin() as conn:
            (reaped,) = await leases.reap_expired(conn, backoff=NO_WAIT)
        assert reaped["status"] == expected
    async with engine.connect() as conn:
        row = await tasks.get_task(conn, str(task["id"]))
    assert (row["status"], row["failure_reason"], row["attempt"]) == ("failed", "lease_expired", 2)


async def test_claim_rules_capacity_pause_team_archive(engine: AsyncEngine) -> None:
    world = await make_world(engine, agent_names=("ada", "bob", "cy"))
    async with engine.begin() as conn:
        await agents.hire_agent(
            conn, company="acme", name="dee", role="design", adapter="process", team="Design"
        )
        for i in range(4):
            await tasks.create_task(conn, company="acme", title=f"Eng {i}", team="Engineering")
        design = await tasks.create_task(conn, company="acme", title="Design it", team="Design")
    ada, bob, cy = (world.agents[n]["id"] for n in ("ada", "bob", "cy"))
    assert len(await _claim(engine, ada, limit=5)) == 1, "one task at a time unless configured otherwise"
    assert await _claim(engine, ada) == [], "at capacity"
    async with engine.begin() as conn:
        await agents.set_agent_status(conn, company="acme", agent="bob", move="pause")
    assert await _claim(engine, bob) == [], "a paused agent takes no new task"
    async with engine.begin() as conn:
        dee = await agents.get_agent(conn, world.company_id, "dee")
    (d,) = await _claim(engine, dee["id"])
    assert d.task_id == design["id"], "a team task goes to an agent of that team"
    async with engine.begin() as conn:
        await companies.archive_company(conn, "acme")
    assert await _claim(engine, cy) == [], "an archived company's agents take no tasks"


async def test_agent_with_capacity_claims_a_batch(engine: AsyncEngine) -> None:
    world = await make_world(engine, agent_names=("ada",), max_concurrent_tasks=10)
    async with engine.begin() as conn:
        for i in range(15):
            await tasks.create_task(conn, company="acme", title=f"T{i}", agent="ada")
    batch = await _claim(engine, world.agents["ada"]["id"], limit=50)
    assert len(batch) == 10
    assert len({c.lease_token for c in batch}) == 10 and len({c.task_id for c in batch}) == 10


CLAIMER = textwrap.dedent(
    """
    import asyncio, sys, uuid
    from sqlalchemy.ext.asyncio import create_async_engine
    from company_agents import leases
    from company_agents.db.database import sqlalchemy_url

    async def main(url, agent_id):
        engine = create_async_engine(sqlalchemy_url(url))
        done = 0
        idle = 0
        while idle < 3:
            async with engine.begin() as conn:
                claims = await leases.claim(conn, agent_id=uuid.UUID(agent_id), holder=f"p{agent_id[:4]}",
                                            lease_seconds=60, limit=4)
            if not claims:
                idle += 1
                await asyncio.sleep(0.05)
                continue
            idle = 0
            for c in claims:
                async with engine.begin() as conn:
                    ident = await leases.authenticate(conn, c.lease_token)
                    await leases.complete(conn, ident, fencing_token=c.fencing_token, output=agent_id)
                done += 1
        await engine.dispose()
        print(done)

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


@pytest.mark.slow
async def test_many_claimer_processes_drain_the_queue_exactly_once(engine: AsyncEngine, db_url: str) -> None:
    names = ("a1", "a2", "a3", "a4")
    world = await make_world(engine, agent_names=names, max_concurrent_tasks=4)
    n = 300
    async with engine.begin() as conn:
        for i in range(n):
            await tasks.create_task(conn, company="acme", title=f"Job {i}", team="Engineering")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, db_url, str(world.agents[a]["id"])],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for a in names
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
    assert sum(int(out.strip()) for out, _ in outs) == n
    async with engine.connect() as conn:
        stats = (
            await conn.execute(text("SELECT count(*) FILTER (WHERE status = 'review'), count(*) FROM tasks"))
        ).one()
        runs_per_task = (
            await conn.execute(
                text("SELECT max(c), min(c) FROM (SELECT count(*) c FROM runs GROUP BY task_id) x")
            )
        ).one()
        claimed_events = (
            await conn.execute(text("SELECT count(*) FROM audit_events WHERE action = 'task.claimed'"))
        ).scalar_one()
    assert tuple(stats) == (n, n), "zero lost tasks"
    assert tuple(runs_per_task) == (1, 1), "zero double claims"
    assert claimed_events == n
