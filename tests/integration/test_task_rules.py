"""Board-side rules: illegal transitions, unknown ids, wrong company, budgets — clear errors, no change."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from company_agents import agents, companies, tasks
from company_agents.errors import Conflict, IllegalTransition, InvalidInput, NotFound
from tests.integration.queue_helpers import engine, make_world

__all__ = ["engine"]


async def _count(engine: AsyncEngine, table: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def test_illegal_transitions_change_nothing(engine: AsyncEngine) -> None:
    await make_world(engine)
    async with engine.begin() as conn:
        task = await tasks.create_task(conn, company="acme", title="Ship it")
    events = await _count(engine, "audit_events")
    for move in (tasks.approve_task, tasks.requeue_task):
        with pytest.raises(IllegalTransition):
            async with engine.begin() as conn:
                await move(conn, str(task["id"]))
    with pytest.raises(IllegalTransition):
        async with engine.begin() as conn:
            await tasks.reject_task(conn, str(task["id"]), feedback="no")
    async with engine.begin() as conn:
        await tasks.cancel_task(conn, str(task["id"]))
    with pytest.raises(IllegalTransition, match="final"):
        async with engine.begin() as conn:
            await tasks.cancel_task(conn, str(task["id"]))
    async with engine.connect() as conn:
        assert (await tasks.get_task(conn, str(task["id"])))["status"] == "cancelled"
    assert await _count(engine, "audit_events") == events + 1


async def test_unknown_ids_and_wrong_company(engine: AsyncEngine) -> None:
    await make_world(engine)
    async with engine.begin() as conn:
        await companies.create_company(conn, name="Other Co", team_names=["Ops"])
        await agents.hire_agent(conn, company="other-co", name="zed", role="ops", adapter="process")
        parent = await tasks.create_task(conn, company="other-co", title="Their task")
    before = await _count(engine, "tasks")
    cases = [
        (NotFound, {"company": "nope", "title": "x"}),
        (NotFound, {"company": "acme", "title": "x", "agent": "zed"}),  # zed works for Other Co
        (NotFound, {"company": "acme", "title": "x", "team": "Ops"}),
        (InvalidInput, {"company": "acme", "title": "x", "parent": str(parent["id"])}),
        (NotFound, {"company": "acme", "title": "x", "parent": str(uuid.uuid4())}),
        (InvalidInput, {"company": "acme", "title": "x", "parent": "not-a-uuid"}),
        (InvalidInput, {"company": "acme", "title": "   "}),
        (InvalidInput, {"company": "acme", "title": "x", "agent": "ada", "team": "Engineering"}),
    ]
    for error, kwargs in cases:
        with pytest.raises(error):
            async with engine.begin() as conn:
                await tasks.create_task(conn, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        async with engine.begin() as conn:
            await tasks.cancel_task(conn, str(uuid.uuid4()))
    assert await _count(engine, "tasks") == before


async def test_budgets_and_reporting_lines(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await companies.create_company(conn, name="Acme", budget_usd=Decimal(500))
        await agents.create_team(conn, company="acme", name="Eng", budget_usd=Decimal(80))
        boss = await agents.hire_agent(
            conn, company="acme", name="boss", role="lead", adapter="p", team="Eng", budget_usd=Decimal(80)
        )
    with pytest.raises(InvalidInput, match="exceeds team Eng"):
        async with engine.begin() as conn:
            await agents.hire_agent(
                conn, company="acme", name="x", role="r", adapter="p", team="Eng", budget_usd=Decimal(81)
            )
    with pytest.raises(InvalidInput, match="exceeds the company budget"):
        async with engine.begin() as conn:
            await agents.create_team(conn, company="acme", name="Big", budget_usd=Decimal(501))
    async with engine.begin() as conn:
        await companies.create_company(conn, name="Other")
        await agents.hire_agent(conn, company="other", name="stranger", role="r", adapter="p")
    with pytest.raises(NotFound):
        async with engine.begin() as conn:
            await agents.hire_agent(
                conn, company="acme", name="y", role="r", adapter="p", reports_to="stranger"
            )
    async with engine.begin() as conn:
        report = await agents.hire_agent(
            conn, company="acme", name="y", role="r", adapter="p", reports_to="boss"
        )
        assert report["reports_to"] == boss["id"]
        await agents.set_agent_status(conn, company="acme", agent="y", move="retire")
    with pytest.raises(Conflict, match="cannot resume"):
        async with engine.begin() as conn:
            await agents.set_agent_status(conn, company="acme", agent="y", move="resume")
    async with engine.connect() as conn:
        actions = (await conn.execute(text("SELECT action FROM audit_events ORDER BY id"))).scalars().all()
    assert actions.count("agent.hired") == 3 and "agent.retired" in actions


@pytest.mark.slow
def test_cli_lists_are_camel_case_json_and_errors_are_one_line(db_url: str, cli_env: dict[str, str]) -> None:
    env = {**cli_env, "DATABASE_URL": db_url}
    cli = [sys.executable, "-m", "company_agents.cli.main"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli, *args], env=env, capture_output=True, text=True, timeout=60)

    assert run("new", "--name", "Acme", "--teams", "Engineering").returncode == 0
    hired = run(
        "agent",
        "hire",
        "--company",
        "acme",
        "--name",
        "ada",
        "--role",
        "dev",
        "--adapter",
        "process",
        "--team",
        "Engineering",
        "--json",
    )
    assert json.loads(hired.stdout)["maxConcurrentTasks"] == 1
    created = json.loads(run("task", "create", "--company", "acme", "--title", "Do it", "--json").stdout)
    listed = json.loads(run("task", "list", "--company", "acme", "--status", "queued", "--json").stdout)
    assert [t["id"] for t in listed] == [created["id"]]
    assert {"assignedAgentId", "fencingToken", "maxAttempts"} <= set(listed[0])
    bad = run("task", "approve", created["id"])
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "cannot become done" in bad.stderr
    unknown = run("task", "list", "--company", "acme", "--status", "bogus")
    assert unknown.returncode == 1 and "unknown status bogus" in unknown.stderr
