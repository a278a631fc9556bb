"""``/v1/companies/{company}/agents``: hire, list, show, patch, pause, resume, retire, rotate-token."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from company_agents.api.deps import (
    CompanyRef,
    Db,
    Reader,
    Writer,
    actor_of,
    company_for,
)
from company_agents.api.middleware import request_id_of
from company_agents.api.schemas.agents import Agent, AgentHire, AgentPatch, AgentWithToken
from company_agents.api.schemas.common import Envelope, ListEnvelope, error_responses, one, page

router = APIRouter(tags=["agents"])

AgentRef = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$", description="The agent's name or id.")
]


def _usd(value: str | None) -> Decimal | None:
    return Decimal(value) if value is not None else None


@router.get(
    "/companies/{company}/agents",
    operation_id="listAgents",
    response_model=ListEnvelope[Agent],
    responses=error_responses(403, 404),
)
async def list_agents(
    request: Request,
    company: CompanyRef,
    principal: Reader,
    db: Db,
    include_retired: bool = False,
) -> Any:
    """The company's agents, oldest hire first."""
    from company_agents import agents

    async with db.engine.connect() as conn:
        current = await company_for(conn, principal, company)
        rows = await agents.list_agents(conn, company=str(current["id"]), include_retired=include_retired)
    return page(request_id_of(request), [Agent.of(r) for r in rows], None)


@router.post(
    "/companies/{company}/agents",
    operation_id="hireAgent",
    status_code=201,
    response_model=Envelope[AgentWithToken],
    responses=error_responses(403, 404, 409, 413),
)
async def hire_agent(
    request: Request, company: CompanyRef, body: AgentHire, principal: Writer, db: Db
) -> Any:
    """Hire an agent; the answer carries its identity token once (for the agent, never for /v1)."""
    from company_agents import agents

    async with db.engine.begin() as conn:
        current = await company_for(conn, principal, company)
        row = await agents.hire_agent(
            conn,
            company=str(current["id"]),
            name=body.name,
            role=body.role,
            adapter=body.adapter,
            team=body.team,
            reports_to=body.reports_to,
            budget_usd=_usd(body.budget_usd),
            task_budget_usd=_usd(body.task_budget_usd),
            max_concurrent_tasks=body.max_concurrent_tasks,
            model=body.model,
            approvals=body.approvals,
            actor=actor_of(principal),
        )
    return one(request_id_of(request), AgentWithToken.of(row))


@router.get(
    "/companies/{company}/agents/{agent}",
    operation_id="getAgent",
    response_model=Envelope[Agent],
    responses=error_responses(403, 404),
)
async def get_agent(request: Request, company: CompanyRef, agent: AgentRef, principal: Reader, db: Db) -> Any:
    """One agent by name or id."""
    from company_agents import agents

    async with db.engine.connect() as conn:
        current = await company_for(conn, principal, company)
        row = await agents.get_agent(conn, current["id"], agent)
    return one(request_id_of(request), Agent.of(row))


@router.patch(
    "/companies/{company}/agents/{agent}",
    operation_id="updateAgent",
    response_model=Envelope[Agent],
    responses=error_responses(403, 404, 409, 413),
)
async def update_agent(
    request: Request, company: CompanyRef, agent: AgentRef, body: AgentPatch, principal: Writer, db: Db
) -> Any:
    """Change name, role, team, budgets, concurrency, model or approval policy of an agent that is not
    retired (409); the fields left out stay, null clears the ones that may be empty."""
    from company_agents import agents

    changes = body.model_dump(exclude_unset=True)
    for key in ("budget_usd", "task_budget_usd"):
        if key in changes:
            changes[key] = _usd(changes[key])
    async with db.engine.begin() as conn:
        current = await company_for(conn, principal, company)
        row = await agents.update_agent(
            conn, company=str(current["id"]), agent=agent, changes=changes, actor=actor_of(principal)
        )
    return one(request_id_of(request), Agent.of(row))


def _status_route(move: str, doc: str) -> None:
    async def route(request: Request, company: CompanyRef, agent: AgentRef, principal: Writer, db: Db) -> Any:
        from company_agents import agents

        async with db.engine.begin() as conn:
            current = await company_for(conn, principal, company)
            row = await agents.set_agent_status(
                conn, company=str(current["id"]), agent=agent, move=move, actor=actor_of(principal)
            )
        return one(request_id_of(request), Agent.of(row))

    route.__doc__ = doc
    route.__name__ = f"{move}_agent"
    router.add_api_route(
        f"/companies/{{company}}/agents/{{agent}}/{move}",
        route,
        methods=["POST"],
        operation_id=f"{move}Agent",
        response_model=Envelope[Agent],
        responses=error_responses(403, 404, 409),
    )


_status_route("pause", "Pause: the agent takes no new task; a running one finishes.")
_status_route("resume", "Resume a paused agent.")
_status_route("retire", "Retire (permanent): the agent takes no new task; its history stays.")


@router.post(
    "/companies/{company}/agents/{agent}/rotate-token",
    operation_id="rotateAgentToken",
    response_model=Envelope[AgentWithToken],
    responses=error_responses(403, 404),
)
async def rotate_agent_token(
    request: Request, company: CompanyRef, agent: AgentRef, principal: Writer, db: Db
) -> Any:
    """A new identity token for the agent (shown once); the old one stops working at once."""
    from company_agents import agents, identity

    async with db.engine.begin() as conn:
        current = await company_for(conn, principal, company)
        row = await agents.get_agent(conn, current["id"], agent)
        token = await identity.rotate_agent_token(conn, row, actor=actor_of(principal))
    return one(request_id_of(request), AgentWithToken.of({**row, "token": token}))
