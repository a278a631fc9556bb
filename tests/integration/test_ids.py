"""Ids people can type (``company_agents.ids``): prefixes, names, the errors, and the CLI using them."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from uuid import UUID

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from company_agents import agents, companies, ids, leases, tasks
from company_agents.db.database import sqlalchemy_url
from company_agents.errors import AmbiguousId, InvalidInput, NotFound
from tests.conftest import PgServer
from tests.integration.queue_helpers import World, make_world

CLI = [sys.executable, "-m", "company_agents.cli.main"]

FIRST = UUID("abcdef01-1111-4111-8111-111111111111")
SECOND = UUID("abcdef02-2222-4222-8222-222222222222")


@pytest.fixture
def url(external_pg: PgServer) -> str:
    return external_pg.create_database()  # about lookups, not the server: one backend is enough


@pytest.fixture
async def engine(url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(sqlalchemy_url(url), poolclass=NullPool)
    yield eng
    await eng.dispose()


async def two_tasks(engine: AsyncEngine) -> World:
    """Two tasks whose ids share the prefix ``abcdef0``."""
    world = await make_world(engine)
    async with engine.begin() as conn:
        for new_id, title in ((FIRST, "Write the README"), (SECOND, "Draft the plan")):
            row = await tasks.create_task(conn, company="acme", title=title, agent="ada")
            await conn.execute(
                text("UPDATE tasks SET id = :new WHERE id = :old"), {"new": new_id, "old": row["id"]}
            )
    return world


async def test_prefixes_resolve_when_unique(engine: AsyncEngine) -> None:
    await two_tasks(engine)
    async with engine.connect() as conn:
        assert await ids.resolve_id(conn, ids.TASK, "abcdef01") == FIRST
        assert await ids.resolve_id(conn, ids.TASK, "ABCDEF02-2222") == SECOND  # case and dashes
        assert await ids.resolve_id(conn, ids.TASK, ids.short_id(SECOND)) == SECOND  # what tables print
        assert (await tasks.get_task(conn, "abcdef011"))["title"] == "Write the README"
        assert await ids.resolve_id(conn, ids.TASK, str(FIRST)) == FIRST


async def test_ambiguous_prefix_lists_the_candidates(engine: AsyncEngine) -> None:
    await two_tasks(engine)
    async with engine.connect() as conn:
        with pytest.raises(AmbiguousId) as caught:
            await ids.resolve_id(conn, ids.TASK, "abcdef")
    message = caught.value.message
    assert "abcdef01 Write the README" in message and "abcdef02 Draft the plan" in message
    assert caught.value.details["candidates"] == [str(FIRST), str(SECOND)]
    assert caught.value.code == "ambiguous_id"


async def test_too_short_unknown_and_not_an_id(engine: AsyncEngine) -> None:
    await two_tasks(engine)
    async with engine.connect() as conn:
        with pytest.raises(InvalidInput, match="too short for an id: give at least 6 characters of the task"):
            await ids.resolve_id(conn, ids.TASK, "abcde")
        with pytest.raises(NotFound, match="no task 123456"):
            await ids.resolve_id(conn, ids.TASK, "123456")
        with pytest.raises(InvalidInput, match="'not-hex!' is not a task id"):
            await ids.resolve_id(conn, ids.TASK, "not-hex!")
        with pytest.raises(NotFound, match=r"no agent 'nobody': give its id .* or its name"):
            await ids.resolve_id(conn, ids.AGENT, "nobody", company_id=uuid.uuid4())


async def test_names_within_their_company(engine: AsyncEngine) -> None:
    world = await make_world(engine)
    async with engine.begin() as conn:
        other = await companies.create_company(conn, name="Other")
        await agents.hire_agent(conn, company="other", name="ada", role="x", adapter="process")
    ada = world.agents["ada"]["id"]
    async with engine.connect() as conn:
        assert await ids.resolve_id(conn, ids.AGENT, "ADA", company_id=world.company_id) == ada
        assert (await agents.get_agent(conn, world.company_id, ids.short_id(ada)))["name"] == "ada"
        assert (await agents.get_team(conn, world.company_id, "engineering"))["name"] == "Engineering"
        assert await ids.resolve_id(conn, ids.COMPANY, "acme") == world.company_id
        with pytest.raises(NotFound, match="or its name with --company"):
            await ids.resolve_id(conn, ids.AGENT, "ada")  # two companies have an ada
        with pytest.raises(NotFound):  # a prefix does not reach into another company
            await agents.get_agent(conn, other["id"], ids.short_id(ada))


async def test_run_ids_with_their_marker_and_labels(engine: AsyncEngine) -> None:
    world = await make_world(engine)
    async with engine.begin() as conn:
        task = await tasks.create_task(conn, company="acme", title="Write", agent="ada")
        (claim,) = await leases.claim(conn, agent_id=world.agents["ada"]["id"], holder="t", lease_seconds=30)
    async with engine.connect() as conn:
        assert await ids.resolve_id(conn, ids.RUN, f"run_{ids.short_id(claim.run_id)}") == claim.run_id
        names = await ids.labels(
            conn,
            {
                "task": (ids.TASK, task["id"]),
                "agent": (ids.AGENT, None),
                "company": (ids.COMPANY, world.company_id),
            },
        )
    assert names == {"task": "Write", "agent": None, "company": "acme"}


@pytest.mark.slow
async def test_cli_show_and_approve_by_prefix(engine: AsyncEngine, url: str, cli_env: dict[str, str]) -> None:
    """``task show`` for people: names beside ids, the summary, no repr; ``--json`` unchanged."""
    world = await make_world(engine)
    async with engine.begin() as conn:
        task = await tasks.create_task(conn, company="acme", title="Write the README", team="Engineering")
        (claim,) = await leases.claim(conn, agent_id=world.agents["ada"]["id"], holder="t", lease_seconds=30)
        output = {"summary": "Wrote **README.md**.", "files_written": ["README.md"]}
        await leases.complete(conn, claim.identity(), fencing_token=claim.fencing_token, output=output)
    env = {**cli_env, "DATABASE_URL": url, "COLUMNS": "120"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)

    short = ids.short_id(task["id"])
    listed = run("task", "list", "--company", "acme")
    assert listed.returncode == 0 and short in listed.stdout and str(task["id"]) not in listed.stdout
    shown = run("task", "show", short)
    assert shown.returncode == 0, shown.stderr
    lines = {line.split("  ", 1)[0]: line for line in shown.stdout.splitlines() if line and line[0] != " "}
    assert f"acme ({ids.short_id(world.company_id)})" in lines["company"]
    assert "Engineering (" in lines["team"]
    assert ids.short_id(claim.run_id) in shown.stdout and "ada" in shown.stdout  # the runs, by agent name
    assert "Wrote **README.md**." in lines["output"], shown.stdout
    for repr_marker in ("{'", "UUID(", "datetime.", "Decimal("):
        assert repr_marker not in shown.stdout
    as_json = json.loads(run("task", "show", short, "--json").stdout)
    assert (
        as_json["id"] == str(task["id"])
        and as_json["output"] == {"output": output, "reasoning": ""}
        and as_json["companyId"]
    )
    approved = run("task", "approve", short)
    assert approved.returncode == 0 and "is done" in approved.stdout, approved.stderr
