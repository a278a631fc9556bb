"""The dashboard's pages (GET): each reads through the domain modules and renders a template."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents.api.schemas.companies import SLUG_PATTERN
from company_agents.dashboard.app import render
from company_agents.db.database import Database
from company_agents.db.schema.tasks import TASK_STATUSES
from company_agents.errors import NotFound

router = APIRouter()

Slug = Path(pattern=SLUG_PATTERN)
# An agent in a URL: its name (or id), as hire accepts it.
AGENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
# A column of the board shows this many cards, then "show more" (keyset pages, never a total).
BOARD_PAGE = 20


def db_of(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def company_scope(conn: AsyncConnection, slug: str) -> dict[str, Any]:
    """The page's company and its inbox badge (every company page shows it)."""
    from company_agents.approvals.inbox import inbox
    from company_agents.companies import get_company

    company = await get_company(conn, slug)
    return {"company": company, "badge": (await inbox(conn, company=str(company["id"]), limit=100))["total"]}


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> HTMLResponse:
    from company_agents.companies import list_companies

    async with db_of(request).engine.connect() as conn:
        companies = await list_companies(conn)
    return render(request, "home.html", companies=companies)


@router.get("/c/{slug}", response_class=HTMLResponse)
async def overview(request: Request, slug: str = Slug) -> HTMLResponse:
    from company_agents.companies import get_company
    from company_agents.overview import company_overview

    async with db_of(request).engine.connect() as conn:
        company = await get_company(conn, slug)
        data = await company_overview(conn, company["id"])
    # The read model counts the inbox already: its total is the badge (no second inbox read).
    return render(
        request,
        "overview.html",
        live="overview_live.html",
        page="overview",
        o=data,
        company=company,
        badge=data.inbox.total,
    )


@router.get("/c/{slug}/badge", response_class=HTMLResponse)
async def badge(request: Request, slug: str = Slug) -> HTMLResponse:
    async with db_of(request).engine.connect() as conn:
        scope = await company_scope(conn, slug)
    return render(request, "badge.html", **scope)


async def board_column(
    conn: AsyncConnection, company_id: UUID, status: str, cursor: str | None
) -> dict[str, Any]:
    from company_agents import pagination, tasks
    from company_agents.api.schemas.common import decode_cursor, encode_cursor

    rows = await tasks.list_tasks(
        conn,
        company=str(company_id),
        status=[status],
        limit=BOARD_PAGE,
        page=True,
        before=decode_cursor(cursor),
    )
    items, last = pagination.split(rows, BOARD_PAGE, "created_at")
    return {"status": status, "tasks": items, "next": encode_cursor(*last) if last else None}


@router.get("/c/{slug}/tasks", response_class=HTMLResponse)
async def board(request: Request, slug: str = Slug) -> HTMLResponse:
    from company_agents.agents import list_agents, list_teams

    async with db_of(request).engine.connect() as conn:
        scope = await company_scope(conn, slug)
        cid = scope["company"]["id"]
        columns = [await board_column(conn, cid, status, None) for status in TASK_STATUSES]
        teams = await list_teams(conn, company=str(cid))
        agents = await list_agents(conn, company=str(cid))
    return render(
        request,
        "tasks.html",
        live="tasks_live.html",
        page="tasks",
        columns=columns,
        teams=teams,
        agents=agents,
        **scope,
    )


@router.get("/c/{slug}/tasks/more", response_class=HTMLResponse)
async def board_more(
    request: Request,
    slug: str = Slug,
    status: str = Query(pattern="^[a-z]+$"),
    cursor: str = Query(max_length=80),
) -> HTMLResponse:
    from company_agents.companies import get_company

    if status not in TASK_STATUSES:
        raise NotFound(f"no task state {status}")
    async with db_of(request).engine.connect() as conn:
        company = await get_company(conn, slug)
        column = await board_column(conn, company["id"], status, cursor)
    return render(request, "tasks_more.html", company=company, column=column)


@router.get("/c/{slug}/tasks/{task_id}", response_class=HTMLResponse)
async def task_detail(request: Request, task_id: UUID, slug: str = Slug) -> HTMLResponse:
    from company_agents import tasks

    async with db_of(request).engine.connect() as conn:
        scope = await company_scope(conn, slug)
        task = await tasks.get_task(conn, task_id)
        if task["company_id"] != scope["company"]["id"]:
            raise NotFound(f"no task {task_id} in this company")
        runs = await tasks.task_runs(conn, task["id"])
    return render(request, "task.html", live="task_live.html", page="tasks", task=task, runs=runs, **scope)


@router.get("/c/{slug}/agents", response_class=HTMLResponse)
async def agents_page(request: Request, slug: str = Slug) -> HTMLResponse:
    from company_agents.agents import list_agents, list_teams

    async with db_of(request).engine.connect() as conn:
        scope = await company_scope(conn, slug)
        cid = str(scope["company"]["id"])
        agents = await list_agents(conn, company=cid, include_retired=True)
        teams = await list_teams(conn, company=cid)
    adapters = known_adapters(request.app.state.settings)
    return render(
        request,
        "agents.html",
        live="agents_live.html",
        page="agents",
        agents=agents,
        teams=teams,
        adapters=adapters,
        **scope,
    )


def known_adapters(settings: Any) -> list[str]:
    """The adapter names the hire form offers (a broken config.json offers none; hire still says why)."""
    from company_agents.adapters.config import load_adapters
    from company_agents.errors import ConfigError

    try:
        return sorted(load_adapters(settings.config_path))
    except ConfigError:
        return []


@router.get("/c/{slug}/inbox", response_class=HTMLResponse)
async def inbox_page(request: Request, slug: str = Slug) -> HTMLResponse:
    from company_agents.approvals.inbox import inbox

    async with db_of(request).engine.connect() as conn:
        scope = await company_scope(conn, slug)
        items = await inbox(conn, company=str(scope["company"]["id"]))
    return render(request, "inbox.html", live="inbox_live.html", page="inbox", inbox=items, **scope)


@router.get("/c/{slug}/costs", response_class=HTMLResponse)
async def costs_page(request: Request, slug: str = Slug) -> HTMLResponse:
    from company_agents.agents import list_teams
    from company_agents.budgets import manage
    from company_agents.costs import report

    async with db_of(request).engine.connect() as conn:
        scope = await company_scope(conn, slug)
        target = await report.resolve_target(conn, str(scope["company"]["id"]))
        period = await report.show(conn, target)
        today = await report.show(conn, target, since="today")
        budgets = await manage.show(conn, company=str(scope["company"]["id"]))
        teams = await list_teams(conn, company=str(scope["company"]["id"]))
    return render(
        request,
        "costs.html",
        live="costs_live.html",
        page="costs",
        period=period,
        today=today,
        reserve=budgets["reserve"],
        teams=teams,
        **scope,
    )


# The memory inspector shows at most this many topics; past it, the page asks for a filter.
MEMORY_PAGE = 200
# An agent page lists this many of its runs, newest first (its whole history is `runs list`).
AGENT_RUNS = 20


@router.get("/c/{slug}/agents/{agent}", response_class=HTMLResponse)
async def agent_page(
    request: Request, slug: str = Slug, agent: str = Path(pattern=AGENT_PATTERN)
) -> HTMLResponse:
    from company_agents import runs
    from company_agents.agents import get_agent
    from company_agents.costs import report

    async with db_of(request).engine.connect() as conn:
        scope = await company_scope(conn, slug)
        cid = scope["company"]["id"]
        row = await get_agent(conn, cid, agent)
        agent_runs = await runs.list_runs(conn, company=str(cid), agent_id=row["id"], limit=AGENT_RUNS)
        period = await report.show(conn, await report.resolve_target(conn, str(cid), agent=str(row["id"])))
        manager = await get_agent(conn, cid, row["reports_to"]) if row["reports_to"] else None
    return render(
        request,
        "agent.html",
        live="agent_live.html",
        page="agents",
        agent=row,
        runs=agent_runs,
        period=period,
        manager=manager,
        rotated=request.query_params.get("rotated") == "1",
        **scope,
    )


@router.get("/c/{slug}/org", response_class=HTMLResponse)
async def org_page(request: Request, slug: str = Slug) -> HTMLResponse:
    from company_agents.agents import list_agents, list_teams

    async with db_of(request).engine.connect() as conn:
        scope = await company_scope(conn, slug)
        cid = str(scope["company"]["id"])
        teams = await list_teams(conn, company=cid)
        agents = await list_agents(conn, company=cid)
    return render(request, "org.html", live="org_live.html", page="org", teams=teams, agents=agents, **scope)


@router.get("/c/{slug}/memory", response_class=HTMLResponse)
async def memory_page(
    request: Request,
    slug: str = Slug,
    scope: str | None = Query(None, pattern="^(company|team|agent|task)$"),
    topic: str | None = Query(None, max_length=200),
) -> HTMLResponse:
    from company_agents.agents import list_agents, list_teams
    from company_agents.memory import list_memory

    async with db_of(request).engine.connect() as conn:
        page_scope = await company_scope(conn, slug)
        company = page_scope["company"]
        entries = await list_memory(
            conn, company["id"], scope=scope or None, topic=topic or None, limit=MEMORY_PAGE + 1
        )
        # Scope ids shown by name: the company, its teams and agents (a task by its id).
        names = {company["id"]: company["name"]}
        names.update({t["id"]: t["name"] for t in await list_teams(conn, company=str(company["id"]))})
        agents = await list_agents(conn, company=str(company["id"]), include_retired=True)
        names.update({a["id"]: a["name"] for a in agents})
    return render(
        request,
        "memory.html",
        live="memory_live.html",
        page="memory",
        entries=entries[:MEMORY_PAGE],
        cut=len(entries) > MEMORY_PAGE,
        names=names,
        scope=scope or "",
        topic=topic or "",
        **page_scope,
    )
