"""``/v1/companies`` and their teams."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request

from company_agents.api.deps import (
    CompanyRef,
    Db,
    Reader,
    Writer,
    actor_of,
    company_for,
    require_unrestricted,
)
from company_agents.api.middleware import request_id_of
from company_agents.api.schemas.common import Envelope, ListEnvelope, error_responses, one, page
from company_agents.api.schemas.companies import (
    Company,
    CompanyCreate,
    CompanyPatch,
    Team,
    TeamCreate,
)

router = APIRouter(tags=["companies"])


@router.get(
    "/companies",
    operation_id="listCompanies",
    response_model=ListEnvelope[Company],
    responses=error_responses(403),
)
async def list_companies(request: Request, principal: Reader, db: Db, include_archived: bool = False) -> Any:
    """Companies the token may see (one, for a company-scoped token), oldest first."""
    from company_agents import companies

    async with db.engine.connect() as conn:
        rows = await companies.list_companies(conn, include_archived=include_archived)
    items = [Company.of(r) for r in rows if principal.sees(r["id"])]
    return page(request_id_of(request), items, None)


@router.post(
    "/companies",
    operation_id="createCompany",
    status_code=201,
    response_model=Envelope[Company],
    responses=error_responses(403, 409, 413),
)
async def create_company(request: Request, body: CompanyCreate, principal: Writer, db: Db) -> Any:
    """Create a company with its teams (a company-scoped token may not)."""
    from company_agents import companies

    require_unrestricted(principal)
    async with db.engine.begin() as conn:
        row = await companies.create_company(
            conn,
            name=body.name,
            slug=body.slug,
            description=body.description,
            budget_usd=Decimal(body.budget_usd) if body.budget_usd is not None else None,
            fiscal_period=body.fiscal_period,
            team_names=body.teams,
            default_adapter=body.default_adapter,
            actor=actor_of(principal),
        )
    return one(request_id_of(request), Company.of(row))


@router.get(
    "/companies/{company}",
    operation_id="getCompany",
    response_model=Envelope[Company],
    responses=error_responses(403, 404),
)
async def get_company(request: Request, company: CompanyRef, principal: Reader, db: Db) -> Any:
    """One company by slug or id."""
    async with db.engine.connect() as conn:
        row = await company_for(conn, principal, company)
    return one(request_id_of(request), Company.of(row))


@router.patch(
    "/companies/{company}",
    operation_id="updateCompany",
    response_model=Envelope[Company],
    responses=error_responses(403, 404, 413),
)
async def update_company(
    request: Request, company: CompanyRef, body: CompanyPatch, principal: Writer, db: Db
) -> Any:
    """Change name, description, budget, fiscal period or default adapter (the slug is permanent)."""
    from company_agents import companies

    changes = body.model_dump(exclude_unset=True)
    if changes.get("budget_usd") is not None:
        changes["budget_usd"] = Decimal(changes["budget_usd"])
    async with db.engine.begin() as conn:
        current = await company_for(conn, principal, company)
        row = await companies.update_company(conn, current["id"], changes, actor=actor_of(principal))
    return one(request_id_of(request), Company.of(row))


@router.post(
    "/companies/{company}/archive",
    operation_id="archiveCompany",
    response_model=Envelope[Company],
    responses=error_responses(403, 404),
)
async def archive_company(request: Request, company: CompanyRef, principal: Writer, db: Db) -> Any:
    """Archive (soft): agents stop taking tasks, nothing is deleted."""
    from company_agents import companies

    async with db.engine.begin() as conn:
        current = await company_for(conn, principal, company)
        row = await companies.archive_company(conn, str(current["id"]), actor=actor_of(principal))
    return one(request_id_of(request), Company.of(row))


@router.get(
    "/companies/{company}/teams",
    operation_id="listTeams",
    response_model=ListEnvelope[Team],
    responses=error_responses(403, 404),
)
async def list_teams(request: Request, company: CompanyRef, principal: Reader, db: Db) -> Any:
    """The company's teams by name."""
    from company_agents import agents

    async with db.engine.connect() as conn:
        current = await company_for(conn, principal, company)
        rows = await agents.list_teams(conn, company=str(current["id"]))
    return page(request_id_of(request), [Team.of(r) for r in rows], None)


@router.post(
    "/companies/{company}/teams",
    operation_id="createTeam",
    status_code=201,
    response_model=Envelope[Team],
    responses=error_responses(403, 404, 409, 413),
)
async def create_team(
    request: Request, company: CompanyRef, body: TeamCreate, principal: Writer, db: Db
) -> Any:
    """Add a team (its budget may not exceed the company's)."""
    from company_agents import agents

    async with db.engine.begin() as conn:
        current = await company_for(conn, principal, company)
        row = await agents.create_team(
            conn,
            company=str(current["id"]),
            name=body.name,
            budget_usd=Decimal(body.budget_usd) if body.budget_usd is not None else None,
            actor=actor_of(principal),
        )
    return one(request_id_of(request), Team.of(row))
