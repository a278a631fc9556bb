"""Budgets against real agent processes: the scheduler of `up` (in this process) runs a real agent
that reports a tool cost every fraction of a second (tests/integration/agents/spender.py).

- soft at 80% is recorded once; at 100% the run is asked to stop, its task waits as blocked (budget),
  a second task of the agent is not started, and spend past the cap is only what landed after the
  cost that reached it; approving the budget_override re-queues the task and it completes;
- catastrophic: the agent, which ignores SIGTERM and ``shutdown``, and its child are killed at once
  (the grace before SIGKILL is far longer than the test);
- a loop: more tool calls than the adapter's loopBudget ends the run (``loop_budget``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from company_agents import tasks
from company_agents.budgets import apply_override_decision, manage
from company_agents.db.database import Database
from company_agents.isolation.launch import Launcher
from company_agents.isolation.modes import unisolated
from company_agents.master_key import MasterKey
from company_agents.runtime.scheduler import Scheduler
from company_agents.settings import Settings
from tests.integration.queue_helpers import engine, make_world

__all__ = ["engine"]

pytestmark = pytest.mark.slow  # real agent processes

AGENT = Path(__file__).parent / "agents" / "spender.py"


@contextlib.asynccontextmanager
async def scheduler(db_url: str, home: Path, *, env: dict[str, str], **adapter: Any) -> AsyncIterator[None]:
    """The scheduler `up` runs, with the spender agent as adapter ``process``, until the block ends."""
    home.mkdir(parents=True, exist_ok=True)
    config = {
        "adapters": {
            "process": {
                "type": "process",
                "binary": sys.executable,
                "args": [str(AGENT)],
                "env": env,
                **adapter,
            }
        }
    }
    (home / "config.json").write_text(json.dumps(config))
    settings = Settings(
        home=home,
        database_url=db_url,
        scheduler_poll_seconds=0.2,
        shutdown_grace_seconds=60,  # a catastrophic kill must not wait for it
        max_concurrent_runs=2,
    )
    db = Database(settings=settings, url=db_url)
    stop = asyncio.Event()
    sched = Scheduler(
        settings,
        db,
        holder="test",
        stop=stop,
        master_key=MasterKey(key=bytes(32), source="test"),
        # Budgets, not isolation, are under test here (tests/acceptance/test_isolation.py has the modes).
        launcher=Launcher(unisolated(), settings),
    )
    runner = asyncio.create_task(sched.run())
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(runner, timeout=90)
        await db.dispose()


async def wait_for(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


async def task_state(engine: AsyncEngine, task_id: Any) -> tuple[str, str | None]:
    ((status, reason),) = await rows(
        engine, "SELECT status, blocked_reason FROM tasks WHERE id = :id", id=task_id
    )
    return status, reason


async def test_soft_once_hard_blocks_a_second_task_waits_and_the_override_resumes(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    await make_world(engine, agent_names=("ada",))
    async with engine.begin() as conn:
        await manage.set_budget(conn, company="acme", agent="ada", usd=Decimal("1"))
        first = await tasks.create_task(conn, company="acme", title="spend", body="obey", agent="ada")
        second = await tasks.create_task(conn, company="acme", title="next", body="obey", agent="ada")
    env = {"SPEND_USD": "0.10", "SPEND_COUNT": "15", "SPEND_INTERVAL": "0.05"}
    async with scheduler(db_url, tmp_path / "home", env=env):

        async def blocked() -> bool:
            return await task_state(engine, first["id"]) == ("blocked", "budget")

        await wait_for(blocked, "the first task blocked by its budget")
        (run,) = await rows(
            engine, "SELECT status, exit_reason FROM runs WHERE task_id = :id", id=first["id"]
        )
        assert tuple(run) == ("cancelled", "budget")
        # The agent's second task was never started: blocked with the scope, no run.
        assert await task_state(engine, second["id"]) == ("blocked", "budget")
        assert await rows(engine, "SELECT id FROM runs WHERE task_id = :id", id=second["id"]) == []
        levels = await rows(
            engine, "SELECT level FROM budget_breaches WHERE scope = 'agent' ORDER BY created_at"
        )
        assert [r[0] for r in levels] == ["soft", "hard"]
        # The bound: past the cap only what landed once it was reached (the cost that reached it
        # and what the agent reported before it read its shutdown).
        entries = [
            r[0]
            for r in await rows(
                engine,
                "SELECT effective_usd FROM cost_entries WHERE task_id = :id ORDER BY created_at",
                id=first["id"],
            )
        ]
        total, reached_at = Decimal(0), None
        for n, usd in enumerate(entries):
            total += usd
            if reached_at is None and total >= 1:
                reached_at = n
        assert reached_at is not None
        assert sum(entries) - 1 <= sum(entries[reached_at:], Decimal(0))
        assert len(entries) < 15  # it stopped before it had reported everything
        ((approval,),) = [
            [r._mapping]
            for r in await rows(
                engine, "SELECT * FROM approvals WHERE kind = 'budget_override' AND status = 'pending'"
            )
        ]
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE approvals SET status = 'approved' WHERE id = :id"), {"id": approval["id"]}
            )
            result = await apply_override_decision(conn, {**dict(approval), "status": "approved"})
        assert result["applied"]

        async def both_reviewed() -> bool:
            return [await task_state(engine, t["id"]) for t in (first, second)] == [("review", None)] * 2

        await wait_for(both_reviewed, "both tasks completed after the override")


async def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie (killed, not yet reaped by its parent) is gone too.
    with contextlib.suppress(FileNotFoundError):
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    return True


async def test_a_catastrophic_breach_kills_the_agent_and_its_children_at_once(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    await make_world(engine, agent_names=("ada",))
    async with engine.begin() as conn:
        await manage.set_budget(conn, company="acme", agent="ada", usd=Decimal("1"))
        task = await tasks.create_task(conn, company="acme", title="spend", body="stubborn", agent="ada")
    env = {"SPEND_USD": "0.70", "SPEND_INTERVAL": "0.2"}
    home = tmp_path / "home"
    async with scheduler(db_url, home, env=env):

        async def workspace_pids() -> list[int] | None:
            found = list((home / "runs").rglob("pids")) if (home / "runs").exists() else []
            return [int(p) for p in found[0].read_text().split()] if found else None

        pids = await wait_for(workspace_pids, "the agent's pids")

        async def blocked() -> bool:
            return await task_state(engine, task["id"]) == ("blocked", "budget")

        await wait_for(blocked, "the task blocked by the catastrophic breach")
        # 0.70 then 1.40 (140% of the cap): killed with SIGKILL at once, not after the 60 s grace.
        for pid in pids:
            assert await _gone(pid), f"process {pid} is still alive"
        levels = await rows(engine, "SELECT level FROM budget_breaches ORDER BY level")
        assert [r[0] for r in levels] == ["catastrophic", "hard", "soft"]


async def test_more_tool_calls_than_the_loop_budget_end_the_run(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    await make_world(engine, agent_names=("ada",))
    async with engine.begin() as conn:
        task = await tasks.create_task(
            conn, company="acme", title="loop", body="tools", agent="ada", max_attempts=1
        )
    async with scheduler(db_url, tmp_path / "home", env={"SPEND_INTERVAL": "0.01"}, loopBudget=5):

        async def failed() -> bool:
            return (await task_state(engine, task["id"]))[0] == "failed"

        await wait_for(failed, "the looping run ended")
    (run,) = await rows(engine, "SELECT exit_reason, error FROM runs WHERE task_id = :id", id=task["id"])
    assert run[0] == "loop_budget" and "more than 5 tool calls" in run[1]
