"""``/v1/companies/{company}/costs``: the roll-up of a scope for the current fiscal period, its
forecast, and the reserve top-up (admin). Money is a string throughout (the roll-up object of
``costs.rollups``). Raw entries, export and adjustments are in ``cost_entries``."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import Field

from company_agents.api.deps import (
    Admin,
    CompanyRef,
    Db,
    Principal,
    Reader,
    actor_of,
    company_for,
)
from company_agents.api.middleware import request_id_of
from company_agents.api.routes.tasks import ID_PATTERN
from company_agents.api.schemas.common import MONEY_PATTERN, Body, Envelope, error_responses, one
from company_agents.db.database import Database

router = APIRouter(tags=["costs"])

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"


class TopUp(Body):
    team: str = Field(min_length=1, max_length=200, pattern=r"\S")
    usd: str = Field(pattern=MONEY_PATTERN.replace("-?", ""))
    reason: str = Field(default="", max_length=10_000)


async def _rollup(request: Request, principal: Principal, db: Database, company: str, **scope: str) -> Any:
    from company_agents.costs import report

    async with db.engine.connect() as conn:
        current = await company_for(conn, principal, company)
        target = await report.resolve_target(conn, str(current["id"]), **scope)
        out = await report.show(conn, target)
    return one(request_id_of(request), out)


@router.get(
    "/companies/{company}/costs",
    operation_id="getCompanyCosts",
    response_model=Envelope[dict[str, Any]],
    responses=error_responses(403, 404),
)
async def company_costs(request: Request, company: CompanyRef, principal: Reader, db: Db) -> Any:
    """The company's spend this fiscal period: totals, by day, by team and agent, budget, forecast."""
    return await _rollup(request, principal, db, company)


@router.get(
    "/companies/{company}/costs/forecast",
    operation_id="getCostForecast",
    response_model=Envelope[dict[str, Any]],
    responses=error_responses(403, 404),
)
async def cost_forecast(request: Request, company: CompanyRef, principal: Reader, db: Db) -> Any:
    """Where the company's spend is heading by the end of the fiscal period: the spend so far, the
    budget, the run rate per day and the projection with its low and high (``forecast`` is null when
    the period has no end ahead, as with a rolling 30 days)."""
    from company_agents.costs import report

    async with db.engine.connect() as conn:
        current = await company_for(conn, principal, company)
        target = await report.resolve_target(conn, str(current["id"]))
        out = await report.show(conn, target)
    keys = ("scope", "scopeId", "name", "period", "timeZone", "total", "budget", "trend", "forecast")
    return one(request_id_of(request), {k: out[k] for k in keys})


def _scope_route(scope: str, plural: str, pattern: str) -> None:
    Ref = Annotated[str, Path(pattern=pattern, description=f"The {scope}'s name or id.")]

    async def route(request: Request, company: CompanyRef, ref: str, principal: Reader, db: Db) -> Any:
        return await _rollup(request, principal, db, company, **{scope: ref})

    # A local type cannot be named in a (postponed, string) annotation: give FastAPI the object.
    route.__annotations__["ref"] = Ref

    route.__doc__ = f"One {scope}'s spend this fiscal period (the company's period and time zone)."
    route.__name__ = f"{scope}_costs"
    router.add_api_route(
        f"/companies/{{company}}/costs/{plural}/{{ref}}",
        route,
        methods=["GET"],
        operation_id=f"get{scope.title()}Costs",
        response_model=Envelope[dict[str, Any]],
        responses=error_responses(403, 404),
    )


_scope_route("team", "teams", NAME_PATTERN)
_scope_route("agent", "agents", NAME_PATTERN)
_scope_route("task", "tasks", ID_PATTERN)
_scope_route("run", "runs", ID_PATTERN)


@router.post(
    "/companies/{company}/costs/topup",
    operation_id="topUpTeam",
    response_model=Envelope[dict[str, Any]],
    responses=error_responses(403, 404, 409, 413),
)
async def topup(request: Request, company: CompanyRef, body: TopUp, principal: Admin, db: Db) -> Any:
    """Move part of the company's reserve into a team's budget for this period (admin)."""
    from company_agents.budgets import manage

    async with db.engine.begin() as conn:
        current = await company_for(conn, principal, company)
        out = await manage.topup(
            conn,
            company=str(current["id"]),
            team=body.team,
            usd=Decimal(body.usd),
            reason=body.reason,
            actor=actor_of(principal),
        )
    return one(request_id_of(request), out)
