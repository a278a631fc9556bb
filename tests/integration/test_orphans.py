"""The start-up sweep of dead holders: what it re-queues, what it must leave alone, what it may kill."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import psutil
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from company_agents import leases, orphans, tasks
from company_agents.db.database import Database
from company_agents.settings import Settings
from tests.integration.queue_helpers import World, engine, make_world

__all__ = ["engine"]

HOST = socket.gethostname()
# Above pid_max: no process can have it, now or later.
DEAD_PID = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1 if Path("/proc").is_dir() else 2**22 + 1


async def _claim(engine: AsyncEngine, world: World, title: str, *, holder: str) -> leases.Claim:
    async with engine.begin() as conn:
        await tasks.create_task(conn, company="acme", title=title, team="Engineering", max_attempts=2)
    async with engine.begin() as conn:
        (claim,) = await leases.claim(
            conn, agent_id=world.agents["ada"]["id"], holder=holder, lease_seconds=300
        )
    assert claim.title == title
    return claim


async def _hold(engine: AsyncEngine, run_id: UUID, *, host: str, pid: int, started_at: float | None) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE runs SET holder_host = :host, holder_pid = :pid, "
                "holder_started_at = to_timestamp(CAST(:started AS float8)) WHERE id = :id"
            ),
            {"host": host, "pid": pid, "started": started_at, "id": run_id},
        )


async def _state(engine: AsyncEngine, task_id: UUID) -> tuple[Any, ...]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT t.status, r.status, r.exit_reason, "
                    "(SELECT count(*) FROM leases l WHERE l.task_id = t.id) "
                    "FROM tasks t JOIN runs r ON r.task_id = t.id AND r.attempt = t.attempt WHERE t.id = :id"
                ),
                {"id": task_id},
            )
        ).one()
    return tuple(row)


@pytest.fixture
def db(db_url: str, tmp_path: Path) -> Database:
    return Database(settings=Settings(home=tmp_path / "home", database_url=db_url), url=db_url)


async def test_only_runs_of_dead_holders_on_this_host_are_ended(engine: AsyncEngine, db: Database) -> None:
    world = await make_world(engine, max_concurrent_tasks=10)
    parent = psutil.Process(os.getppid())
    dead = await _claim(engine, world, "dead holder here", holder=f"{HOST}:{DEAD_PID}")
    await _hold(engine, dead.run_id, host=HOST, pid=DEAD_PID, started_at=1.0)
    elsewhere = await _claim(engine, world, "dead holder elsewhere", holder=f"elsewhere:{DEAD_PID}")
    await _hold(engine, elsewhere.run_id, host="elsewhere", pid=DEAD_PID, started_at=1.0)
    live = await _claim(engine, world, "live holder", holder=f"{HOST}:{parent.pid}")
    await _hold(engine, live.run_id, host=HOST, pid=parent.pid, started_at=parent.create_time())
    reused = await _claim(engine, world, "reused pid", holder=f"{HOST}:{parent.pid}")
    await _hold(engine, reused.run_id, host=HOST, pid=parent.pid, started_at=parent.create_time() - 60)
    # Died between the claim and the agent's start: only the claim's hostname:pid is known.
    unrecorded_dead = await _claim(engine, world, "claimed, dead", holder=f"{HOST}:{DEAD_PID}")
    unrecorded_live = await _claim(engine, world, "claimed, live pid", holder=f"{HOST}:{parent.pid}")

    ended = await orphans.sweep_orphans(db)
    await db.dispose()

    assert sorted(str(r["task_id"]) for r in ended) == sorted(
        str(c.task_id) for c in (dead, reused, unrecorded_dead)
    )
    for claim in (dead, reused, unrecorded_dead):
        assert await _state(engine, claim.task_id) == ("queued", "failed", "crash", 0)
    for claim in (elsewhere, live, unrecorded_live):
        assert await _state(engine, claim.task_id) == ("assigned", "running", None, 1)
    async with engine.connect() as conn:
        events = (
            await conn.execute(
                text(
                    "SELECT subject_id, actor, action, payload->>'holder' FROM audit_events "
                    "WHERE payload->>'reason' = 'orchestrator_died' ORDER BY subject_id"
                )
            )
        ).all()
    assert [tuple(e) for e in events] == sorted(
        (str(c.task_id), "system:orchestrator", "task.requeued", f"{HOST}:{DEAD_PID}")
        if c is not reused
        else (str(c.task_id), "system:orchestrator", "task.requeued", f"{HOST}:{parent.pid}")
        for c in (dead, reused, unrecorded_dead)
    )


async def test_a_task_another_orchestrator_took_since_is_never_touched(
    engine: AsyncEngine, db: Database
) -> None:
    world = await make_world(engine)
    first = await _claim(engine, world, "retaken", holder=f"{HOST}:{DEAD_PID}")
    orphan = orphans.Orphan(
        run_id=first.run_id,
        task_id=first.task_id,
        fencing_token=first.fencing_token,
        holder=f"{HOST}:{DEAD_PID}",
        agent_pgid=None,
        agent_started_at=None,
    )
    # Between the sweep's read and its write, the attempt ended and another orchestrator claimed again.
    async with engine.begin() as conn:
        await leases.fail(
            conn,
            first.identity(),
            fencing_token=first.fencing_token,
            reason="x",
            backoff=leases.RetryBackoff(0, 0),
        )
    async with engine.begin() as conn:
        (second,) = await leases.claim(
            conn, agent_id=world.agents["ada"]["id"], holder="other:1", lease_seconds=300
        )
    async with db.autocommit() as conn:
        assert await orphans.end_orphan(conn, orphan, killed=0) is None
    await db.dispose()
    assert second.fencing_token == first.fencing_token + 1
    assert await _state(engine, first.task_id) == ("assigned", "running", None, 1)


def test_the_holder_check_tells_a_reused_pid_from_the_holder() -> None:
    me = psutil.Process()
    assert orphans.holder_alive(me.pid, me.create_time()) is True
    assert orphans.holder_alive(me.pid, me.create_time() - 5) is False
    assert orphans.holder_alive(me.pid, None) is None  # alive, but cannot tell whose pid it is now
    assert orphans.holder_alive(DEAD_PID, None) is False


@pytest.mark.slow
def test_the_agent_group_is_killed_only_when_its_members_started_with_the_agent() -> None:
    sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        started = psutil.Process(sleeper.pid).create_time()
        assert orphans.kill_agent_group(sleeper.pid, None) == 0
        # The group id now names processes older than the agent: someone else's, after pid reuse.
        assert orphans.kill_agent_group(sleeper.pid, started + 5) == 0
        assert sleeper.poll() is None
        assert orphans.kill_agent_group(sleeper.pid, started) == 1
        deadline = time.monotonic() + 10
        while sleeper.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sleeper.returncode == -9
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()
