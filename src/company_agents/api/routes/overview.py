"""``/v1/companies/{company}/overview``: the company at a glance (``company_agents.overview``), the read
model the dashboard's overview page and ``watch`` show."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from company_agents.api.deps import CompanyRef, Db, Reader, company_for
from company_agents.api.middleware import request_id_of
from company_agents.api.schemas.common import Envelope, error_responses, one
from company_agents.api.schemas.overview import OverviewPublic

router = APIRouter(tags=["overview"])


@router.get(
    "/companies/{company}/overview",
    operation_id="getCompanyOverview",
    response_model=Envelope[OverviewPublic],
    responses=error_responses(403, 404),
)
async def company_overview(request: Request, company: CompanyRef, principal: Reader, db: Db) -> Any:
    """Tasks by state and in flight, teams and their agents, inbox counts, spend against the budget
    with a forecast, agent health and the latest activity."""
    from company_agents import overview

    async with db.engine.connect() as conn:
        current = await company_for(conn, principal, company)
        out = await overview.company_overview(conn, current["id"])
    return one(request_id_of(request), out.model_dump(mode="json", by_alias=True))
