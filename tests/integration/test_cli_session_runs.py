"""Which CLI session the next run of a task resumes (``runs.session_to_resume``), from real claims and
real run endings; and housekeeping's sweep of the CLI state of tasks that ended (docs/adapters.md
§Sessions)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from company_agents import leases, runs, tasks
from company_agents.adapters.clis import state as cli_state
from company_agents.settings import Settings
from tests.integration.queue_helpers import engine, make_world

__all__ = ["engine"]


async def _claim(engine: AsyncEngine, agent_id: UUID) -> leases.Claim:
    async with engine.begin() as conn:
        (claim,) = await leases.claim(conn, agent_id=agent_id, holder="t", lease_seconds=30)
    return claim


async def _to_resume(engine: AsyncEngine, claim: leases.Claim) -> tuple[str, str] | None:
    async with engine.begin() as conn:
        task = (
            await conn.execute(text("SELECT feedback FROM tasks WHERE id = :id"), {"id": claim.task_id})
        ).one()
        return await runs.session_to_resume(
            conn, task_id=claim.task_id, run_id=claim.run_id, agent_id=claim.agent_id, feedback=task[0]
        )


async def test_a_reject_with_feedback_resumes_the_finished_runs_session_and_a_failure_does_not(
    engine: AsyncEngine,
) -> None:
    world = await make_world(engine)
    ada = world.agents["ada"]
    async with engine.begin() as conn:
        task = await tasks.create_task(conn, company="acme", title="Write hello", agent="ada", max_attempts=5)
    first = await _claim(engine, ada["id"])
    assert await _to_resume(engine, first) is None  # the first run of a task starts fresh
    async with engine.begin() as conn:
        await runs.record_cli_session(conn, first.run_id, "sess-aaaa-1111")
        await leases.complete(conn, first.identity(), fencing_token=first.fencing_token, output={"ok": 1})
        await tasks.reject_task(conn, str(task["id"]), feedback="In French.")
    second = await _claim(engine, ada["id"])
    assert await _to_resume(engine, second) == ("sess-aaaa-1111", "feedback")
    async with engine.begin() as conn:
        await runs.record_cli_session(conn, second.run_id, "sess-bbbb-2222")
        await leases.fail(
            conn,
            second.identity(),
            fencing_token=second.fencing_token,
            reason="crashed",
            exit_reason="crash",
            backoff=leases.RetryBackoff(base_seconds=0),
        )
    third = await _claim(engine, ada["id"])
    # After a failure the conversation may be half done: a fresh session, feedback or not.
    assert await _to_resume(engine, third) is None
    async with engine.begin() as conn:
        recorded = (
            (await conn.execute(text("SELECT cli_session FROM runs ORDER BY fencing_token"))).scalars().all()
        )
    assert recorded == ["sess-aaaa-1111", "sess-bbbb-2222", None]


async def test_a_run_that_ended_waiting_on_an_approval_is_resumed_by_the_same_agent_only(
    engine: AsyncEngine,
) -> None:
    world = await make_world(engine)
    ada = world.agents["ada"]
    async with engine.begin() as conn:
        await tasks.create_task(conn, company="acme", title="Deploy", agent="ada")
    first = await _claim(engine, ada["id"])
    async with engine.begin() as conn:
        await runs.record_cli_session(conn, first.run_id, "sess-cccc-3333")
        await conn.execute(
            text(
                "UPDATE runs SET status = 'handed_off', exit_reason = 'approval', ended_at = now() "
                "WHERE id = :id"
            ),
            {"id": first.run_id},
        )
    # The next run, as the session lookup sees it (any run of the task but the one that left it).
    fake_next = replace(first, run_id=UUID(int=1))
    assert await _to_resume(engine, fake_next) == ("sess-cccc-3333", "approval")
    other = replace(first, run_id=UUID(int=1), agent_id=world.agents["bob"]["id"])
    assert await _to_resume(engine, other) is None  # another agent's CLI never sees this session


async def test_housekeeping_removes_the_cli_state_of_ended_tasks_only(
    engine: AsyncEngine, home: Path, db_url: str
) -> None:
    world = await make_world(engine)
    async with engine.begin() as conn:
        live = await tasks.create_task(conn, company="acme", title="Still going", agent="ada")
        ended = await tasks.create_task(conn, company="acme", title="Called off", agent="ada")
        await tasks.cancel_task(conn, str(ended["id"]))
    settings = Settings(home=home, database_url=db_url)
    gone = UUID(int=7)  # a task that no longer exists
    for task_id in (live["id"], ended["id"], gone):
        (cli_state.state_dir(settings, task_id) / "home").mkdir(parents=True)
    (settings.cli_state_dir / "not-a-task").mkdir()
    async with engine.connect() as conn:
        assert await cli_state.sweep(settings, conn) == 2
    assert sorted(p.name for p in settings.cli_state_dir.iterdir()) == sorted([str(live["id"]), "not-a-task"])
    assert world.slug == "acme"


async def test_a_succeeded_runs_workspace_is_not_due_while_its_cli_may_still_be_exiting(
    engine: AsyncEngine,
) -> None:
    from company_agents.workspaces import expired_workspaces

    world = await make_world(engine)
    async with engine.begin() as conn:
        await tasks.create_task(conn, company="acme", title="Write hello", agent="ada")
    claim = await _claim(engine, world.agents["ada"]["id"])
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE runs SET workspace_path = '/nowhere' WHERE id = :id"), {"id": claim.run_id}
        )
        # Ended over MCP (mark_complete) a moment ago: its CLI is still winding down in the workspace.
        await leases.complete(conn, claim.identity(), fencing_token=claim.fencing_token, output={"ok": 1})
    async with engine.connect() as conn:
        assert await expired_workspaces(conn, retention_days=7, settle_seconds=60) == []
        (due,) = await expired_workspaces(conn, retention_days=7, settle_seconds=0)
    assert due["id"] == claim.run_id
