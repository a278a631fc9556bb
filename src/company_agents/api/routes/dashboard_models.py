"""``/v1/companies/{company}/dashboard/{overview|inbox|health|cost|org|activity}``: the dashboard's
read models, read-only, each cached a few seconds per company (``api.read_cache``).

Overview, health, org and activity are views of one read (``overview.company_overview``), so they
share one cache entry; inbox and cost are their own reads, as the dashboard's pages make them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents.api.deps import CompanyRef, Db, Principal, Reader, company_for
from company_agents.api.middleware import request_id_of
from company_agents.api.read_cache import cache_of
from company_agents.api.schemas.common import Envelope, error_responses, one
from company_agents.api.schemas.dashboard import (
    DashboardActivity,
    DashboardCost,
    DashboardHealth,
    DashboardInbox,
    DashboardOrg,
)
from company_agents.api.schemas.overview import OverviewPublic
from company_agents.db.database import Database

router = APIRouter(prefix="/companies/{company}/dashboard", tags=["dashboard"])


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


async def _overview(request: Request, conn: AsyncConnection, company_id: UUID) -> dict[str, Any]:
    """The company's overview as JSON, from the cache when fresh."""
    from company_agents import overview

    async def compute() -> dict[str, Any]:
        out = await overview.company_overview(conn, company_id)
        data: dict[str, Any] = out.model_dump(mode="json", by_alias=True)
        return data

    data: dict[str, Any] = await cache_of(request).get_or_compute(("overview", company_id), compute)
    return data


async def _view(request: Request, principal: Principal, db: Database, company: str) -> dict[str, Any]:
    async with db.engine.connect() as conn:
        current = await company_for(conn, principal, company)
        return await _overview(request, conn, current["id"])


@router.get(
    "/overview",
    operation_id="getDashboardOverview",
    response_model=Envelope[OverviewPublic],
    responses=error_responses(403, 404),
)
async def dashboard_overview(request: Request, company: CompanyRef, principal: Reader, db: Db) -> Any:
    """The company at a glance (``GET …/overview``, cached a few seconds)."""
    return one(request_id_of(request), await _view(request, principal, db, company))


@router.get(
    "/health",
    operation_id="getDashboardHealth",
    response_model=Envelope[DashboardHealth],
    responses=error_responses(403, 404),
)
async def dashboard_health(request: Request, company: CompanyRef, principal: Reader, db: Db) -> Any:
    """Agents by health (ok, degraded, failing, paused), each with the tasks it holds."""
    o = await _view(request, principal, db, company)
    agents = [a for team in o["teams"] for a in team["agents"]] + o["agentsWithoutTeam"]
    data = {"generatedAt": o["generatedAt"], "health": o["health"], "agents": agents}
    return one(request_id_of(request), DashboardHealth.of(data))


@router.get(
    "/org",
    operation_id="getDashboardOrg",
    response_model=Envelope[DashboardOrg],
    responses=error_responses(403, 404),
)
async def dashboard_org(request: Request, company: CompanyRef, principal: Reader, db: Db) -> Any:
    """The organisation: teams with their agents, and agents in no team."""
    o = await _view(request, principal, db, company)
    data = {
        "generatedAt": o["generatedAt"],
        "company": o["company"],
        "teams": o["teams"],
        "agentsWithoutTeam": o["agentsWithoutTeam"],
    }
    return one(request_id_of(request), DashboardOrg.of(data))


@router.get(
    "/activity",
    operation_id="getDashboardActivity",
    response_model=Envelope[DashboardActivity],
    responses=error_responses(403, 404),
)
async def dashboard_activity(request: Request, company: CompanyRef, principal: Reader, db: Db) -> Any:
    """The newest activity of the company."""
    o = await _view(request, principal, db, company)
    data = {"generatedAt": o["generatedAt"], "events": o["recentActivity"]}
    return one(request_id_of(request), DashboardActivity.of(data))


@router.get(
    "/inbox",
    operation_id="getDashboardInbox",
    response_model=Envelope[DashboardInbox],
    responses=error_responses(403, 404),
)
async def dashboard_inbox(request: Request, company: CompanyRef, principal: Reader, db: Db) -> Any:
    """What waits for a person: approvals, handoffs and questions."""
    from company_agents.approvals.inbox import inbox

    async with db.engine.connect() as conn:
        current = await company_for(conn, principal, company)

        async def compute() -> dict[str, Any]:
            items = await inbox(conn, company=str(current["id"]))
            data: dict[str, Any] = DashboardInbox.of({**items, "generated_at": _now()})
            return data

        data = await cache_of(request).get_or_compute(("inbox", current["id"]), compute)
    return one(request_id_of(request), data)


@router.get(
    "/cost",
    operation_id="getDashboardCost",
    response_model=Envelope[DashboardCost],
    responses=error_responses(403, 404),
)
async def dashboard_cost(request: Request, company: CompanyRef, principal: Reader, db: Db) -> Any:
    """Spend this fiscal period and today: totals, by day, by team and agent, budget, forecast."""
    from company_agents.costs import report

    async with db.engine.connect() as conn:
        current = await company_for(conn, principal, company)

        async def compute() -> dict[str, Any]:
            target = await report.resolve_target(conn, str(current["id"]))
            period = await report.show(conn, target)
            today = await report.show(conn, target, since="today")
            data: dict[str, Any] = DashboardCost.of(
                {"generated_at": _now(), "period": period, "today": today}
            )
            return data

        data = await cache_of(request).get_or_compute(("cost", current["id"]), compute)
    return one(request_id_of(request), data)
