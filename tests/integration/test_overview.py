"""The overview read model on a small seeded company, and its route (auth, scopes, unknown company)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg.types.json import Jsonb
from sqlalchemy.ext.asyncio import AsyncEngine

from company_agents import agents, companies, overview
from company_agents.api.schemas.overview import OverviewPublic
from tests.integration.api.helpers import Api, api
from tests.integration.queue_helpers import engine

__all__ = ["api", "engine"]


@dataclass
class Seeded:
    company_id: UUID
    agents: dict[str, UUID]
    teams: dict[str, UUID]
    running_task: UUID
    running_run: UUID


def _task(conn: psycopg.Connection[Any], company: UUID, status: str, agent: UUID | None, **cols: Any) -> UUID:
    task = uuid4()
    finished = "now()" if status in ("done", "failed", "cancelled") else "NULL"
    conn.execute(
        "INSERT INTO tasks (id, company_id, title, status, assigned_agent_id, assigned_team_id, attempt,"
        f" blocked_reason, created_at, finished_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s,"
        f" coalesce(%s, clock_timestamp()), {finished})",
        (task, company, f"{status} task", status, agent, cols.get("team"), cols.get("attempt", 0),
         cols.get("blocked_reason"), cols.get("created_at")),
    )  # fmt: skip
    return task


def _run(conn: psycopg.Connection[Any], company: UUID, task: UUID, agent: UUID, status: str, n: int) -> UUID:
    run = uuid4()
    conn.execute(
        "INSERT INTO runs (id, task_id, company_id, agent_id, attempt, fencing_token, status, started_at,"
        " ended_at) VALUES (%s, %s, %s, %s, %s, %s, %s, now() - make_interval(mins => %s),"
        " CASE WHEN %s = 'running' THEN NULL ELSE now() END)",
        (run, task, company, agent, n, n, status, 100 - n, status),
    )
    return run


async def _seed(engine: AsyncEngine, db_url: str, *, slug: str = "acme") -> Seeded:
    async with engine.begin() as conn:
        comp = await companies.create_company(
            conn,
            name=slug.title(),
            slug=slug,
            budget_usd=Decimal("100"),
            team_names=["Engineering", "Design"],
        )
        hired = {
            name: (
                await agents.hire_agent(
                    conn, company=slug, name=name, role="worker", adapter="process", team=team
                )
            )["id"]
            for name, team in (
                ("ada", "Engineering"),
                ("bob", "Engineering"),
                ("cyd", None),
                ("dee", "Design"),
            )
        }
        await agents.set_agent_status(conn, company=slug, agent="dee", move="pause")
        teams = {t["name"]: t["id"] for t in await agents.list_teams(conn, company=slug)}
    cid = comp["id"]
    ada, bob, cyd = hired["ada"], hired["bob"], hired["cyd"]
    with psycopg.connect(db_url) as conn:
        for status in ("queued", "queued", "review", "done", "done", "failed", "cancelled"):
            _task(conn, cid, status, ada)
        blocked = _task(conn, cid, "blocked", None, team=teams["Design"], blocked_reason="approval")
        handoff = _task(conn, cid, "handoff", cyd)
        done_yesterday = _task(conn, cid, "done", ada)
        conn.execute(
            "UPDATE tasks SET finished_at = now() - interval '2 days' WHERE id = %s", (done_yesterday,)
        )
        running = _task(conn, cid, "running", ada, attempt=2, created_at="2000-01-01T00:00:00Z")
        _run(conn, cid, running, ada, "failed", 1)
        run = _run(conn, cid, running, ada, "running", 2)
        for n, payload in enumerate(
            ({"message": "started"}, {"message": "x" * 5000, "step": "tests", "percent": 40})
        ):
            conn.execute(
                "INSERT INTO run_checkpoints (run_id, fencing_token, payload, created_at)"
                " VALUES (%s, 2, %s, now() + make_interval(secs => %s))",
                (run, Jsonb(payload), n),
            )
        conn.execute(
            "INSERT INTO leases (task_id, run_id, agent_id, company_id, fencing_token, token_hash,"
            " expires_at, reserved_usd) VALUES (%s, %s, %s, %s, 2, %s, now() + interval '5 minutes', 2.5)",
            (running, run, ada, cid, uuid4().hex),
        )
        old = _task(conn, cid, "failed", bob)
        for n in (1, 2, 3):
            _run(conn, cid, old, bob, "failed", n)
        cyd_task = _task(conn, cid, "failed", cyd)
        _run(conn, cid, cyd_task, cyd, "succeeded", 1)
        _run(conn, cid, cyd_task, cyd, "failed", 2)
        done_task = _task(conn, cid, "done", ada)
        for task, status, action in (
            (blocked, "pending", "deploy"),  # counts
            (None, "pending", "spend"),  # counts: no task
            (done_task, "pending", "late"),  # its task finished: waits for nobody
            (handoff, "asked_question", "ask"),  # an open question
            (handoff, "denied", "other"),
        ):
            conn.execute(
                "INSERT INTO approvals (company_id, task_id, action, status, requested_by, expires_at)"
                " VALUES (%s, %s, %s, %s, 'agent:x', now() + interval '1 hour')",
                (cid, task, action, status),
            )
        # The counters are what the overview reads (the ledger's entries are not summed).
        conn.execute(
            "INSERT INTO cost_counters (scope, scope_id, day, company_id, usd, entries, unpriced_entries)"
            " VALUES ('company', %(c)s, (now() AT TIME ZONE 'UTC')::date, %(c)s, 1.5, 3, 1),"
            " ('company', %(c)s, date_trunc('month', now() AT TIME ZONE 'UTC')::date - 1, %(c)s, 99, 9, 5)",
            {"c": cid},
        )
        if int(conn.execute("SELECT extract(day FROM now() AT TIME ZONE 'UTC')").fetchone()[0]) > 1:  # type: ignore[index]
            conn.execute(
                "INSERT INTO cost_counters (scope, scope_id, day, company_id, usd, entries)"
                " VALUES ('company', %(c)s, date_trunc('month', now() AT TIME ZONE 'UTC')::date, %(c)s,"
                " 2, 1)",
                {"c": cid},
            )
        for n in range(30):
            conn.execute(
                "INSERT INTO audit_events (company_id, actor, action, subject_type, subject_id, payload)"
                " VALUES (%s, 'user:local', 'task.created', 'task', %s, %s)",
                (cid, str(n), Jsonb({"n": n})),
            )
    return Seeded(cid, hired, teams, running, run)


async def test_overview_contents(engine: AsyncEngine, db_url: str) -> None:
    seeded = await _seed(engine, db_url)
    other = await _seed(engine, db_url, slug="other")  # another company's rows never count
    async with engine.connect() as conn:
        out = await overview.company_overview(conn, seeded.company_id)
    assert isinstance(out, OverviewPublic)
    assert out.company.slug == "acme"

    t = out.tasks
    assert t.by_state == {
        "queued": 2, "assigned": 0, "running": 1, "review": 1, "done": 4, "failed": 3,
        "cancelled": 1, "handoff": 1, "blocked": 1,
    }  # fmt: skip
    assert t.total == 14 and t.in_flight == 4
    assert (t.done_today, t.failed_today) == (3, 3)

    # Newest first; the running task was created long ago, so it comes last.
    assert [x.status for x in out.tasks_in_flight] == ["handoff", "blocked", "review", "running"]
    assert out.tasks_in_flight[1].blocked_reason == "approval"
    assert out.tasks_in_flight[0].assigned_agent_name == "cyd"
    limited = await _overview(engine, seeded.company_id, in_flight_limit=2)
    assert [x.status for x in limited.tasks_in_flight] == ["handoff", "blocked"]

    teams = {team.name: team for team in out.teams}
    assert list(teams) == ["Design", "Engineering"]
    eng, design = teams["Engineering"], teams["Design"]
    assert [a.name for a in eng.agents] == ["ada", "bob"] and eng.agent_count == 2
    assert eng.tasks_in_flight == 2 and design.tasks_in_flight == 1  # cyd's handoff has no team
    ada, bob = eng.agents
    assert ada.health == "degraded" and bob.health == "failing"
    assert design.agents[0].health == "paused"
    [running] = ada.running_tasks
    assert running.task_id == seeded.running_task and running.run_id == seeded.running_run
    assert (running.step, running.percent) == ("tests", 40)
    assert running.message is not None and len(running.message) == overview.MESSAGE_CHARS
    assert bob.running_tasks == []
    assert [a.name for a in out.agents_without_team] == ["cyd"]
    assert out.agents_without_team[0].health == "degraded"

    assert out.inbox.model_dump() == {"approvals": 2, "handoffs": 1, "questions": 1, "total": 4}

    c = out.cost
    assert c.today == "1.50000000"  # the precision of the counters, as `cost show`
    this_period = Decimal(c.this_period)
    assert this_period in (Decimal("1.5"), Decimal("3.5"))  # 3.5 unless today is the 1st
    assert Decimal(c.budget) == 100 and Decimal(c.reserved) == Decimal("2.5")
    assert Decimal(c.remaining) == Decimal(100) - this_period - Decimal("2.5")
    assert c.level is None and c.unpriced_entries == 1
    assert c.forecast_end_of_period is not None and Decimal(c.forecast_end_of_period) >= this_period

    h = out.health
    assert (h.total, h.running, h.idle, h.paused, h.degraded, h.failing) == (4, 1, 2, 1, 2, 1)

    assert len(out.recent_activity) == overview.ACTIVITY_LIMIT
    assert [e.payload["n"] for e in out.recent_activity[:3]] == [29, 28, 27]
    assert out.recent_activity[0].category == "task"

    other_out = await _overview(engine, other.company_id)
    assert other_out.tasks.total == 14 and other_out.company.slug == "other"


async def _overview(engine: AsyncEngine, company_id: UUID, **kw: Any) -> OverviewPublic:
    async with engine.connect() as conn:
        return await overview.company_overview(conn, company_id, **kw)


async def test_empty_company_and_breach(engine: AsyncEngine, db_url: str) -> None:
    async with engine.begin() as conn:
        comp = await companies.create_company(conn, name="Solo", budget_usd=Decimal("1"))
    out = await _overview(engine, comp["id"])
    assert out.tasks.total == 0 and out.teams == [] and out.agents_without_team == []
    assert Decimal(out.cost.this_period) == 0 and out.cost.percent_used == "0.0"
    assert out.inbox.total == 0 and out.health.total == 0
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO cost_counters (scope, scope_id, day, company_id, usd, entries)"
            " VALUES ('company', %(c)s, (now() AT TIME ZONE 'UTC')::date, %(c)s, 1.5, 1)",
            {"c": comp["id"]},
        )
    out = await _overview(engine, comp["id"])
    assert out.cost.level == "catastrophic" and Decimal(out.cost.remaining) == Decimal("-0.5")


async def test_unknown_company_is_not_found(engine: AsyncEngine) -> None:
    from company_agents.errors import NotFound

    with pytest.raises(NotFound):
        await _overview(engine, uuid4())


async def test_route(api: Api, db_url: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    from company_agents.db.database import sqlalchemy_url

    eng = create_async_engine(sqlalchemy_url(db_url))
    try:
        seeded = await _seed(eng, db_url)
        other = await _seed(eng, db_url, slug="other")
    finally:
        await eng.dispose()
    reader = await api.token("read")
    response = await api.call("GET", "/v1/companies/acme/overview", reader)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["company"]["id"] == str(seeded.company_id)
    assert data["tasks"]["byState"]["running"] == 1 and data["inbox"]["total"] == 4
    assert Decimal(data["cost"]["budget"]) == 100 and data["generatedAt"].endswith("Z")
    assert data["teams"][1]["agents"][0]["runningTasks"][0]["step"] == "tests"
    by_id = await api.call("GET", f"/v1/companies/{seeded.company_id}/overview", reader)
    assert by_id.json()["data"]["company"]["slug"] == "acme"

    assert (await api.call("GET", "/v1/companies/acme/overview", None)).status_code == 401
    assert (await api.call("GET", "/v1/companies/acme/overview", "ca_dev_" + "0" * 32)).status_code == 401
    missing = await api.call("GET", "/v1/companies/nope/overview", reader)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    # A token of one company sees another's overview as missing, exactly like an unknown one.
    scoped = await api.token("read", company_id=other.company_id)
    assert (await api.call("GET", "/v1/companies/acme/overview", scoped)).status_code == 404
    assert (await api.call("GET", "/v1/companies/other/overview", scoped)).status_code == 200
