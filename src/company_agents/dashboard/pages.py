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
    from company_agents.costs import report

    async with db_of(request).engine.connect() as conn:
        scope = await company_scope(conn, slug)
        target = await report.resolve_target(conn, str(scope["company"]["id"]))
        period = await report.show(conn, target)
        today = await report.show(conn, target, since="today")
    return render(
        request,
        "costs.html",
        live="costs_live.html",
        page="costs",
        period=period,
        today=today,
        **scope,
    )
