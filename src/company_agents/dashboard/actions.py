"""The dashboard's actions (POST, CSRF-checked by the guard): each calls one domain function in one
transaction and redirects to the page that shows the result (POST, redirect, GET)."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse

from company_agents.api.schemas.companies import SLUG_PATTERN
from company_agents.dashboard.app import form_of
from company_agents.dashboard.pages import db_of
from company_agents.errors import InvalidInput, NotFound

router = APIRouter()

Slug = Path(pattern=SLUG_PATTERN)
AGENT = Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
TASK_MOVES = ("cancel", "approve", "requeue", "reject")
AGENT_MOVES = ("pause", "resume", "retire")


def see(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def money(form: dict[str, str], field: str) -> Decimal | None:
    raw = form.get(field, "")
    if not raw:
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise InvalidInput(
            f"{field.replace('_', ' ')} is not an amount in USD: {raw!r}", field=field
        ) from None
    if not value.is_finite() or value < 0:
        raise InvalidInput(f"{field.replace('_', ' ')} must be zero or more", field=field)
    return value


def whole(form: dict[str, str], field: str, default: int) -> int:
    raw = form.get(field, "")
    try:
        return int(raw) if raw else default
    except ValueError:
        raise InvalidInput(f"{field.replace('_', ' ')} is not a whole number: {raw!r}", field=field) from None


def required(form: dict[str, str], field: str) -> str:
    value = form.get(field, "")
    if not value:
        raise InvalidInput(f"{field.replace('_', ' ')} is required", field=field)
    return value


@router.post("/companies")
async def create_company(request: Request) -> RedirectResponse:
    from company_agents import companies

    form = await form_of(request)
    teams = [t.strip() for t in form.get("teams", "").split(",") if t.strip()]
    async with db_of(request).engine.begin() as conn:
        row = await companies.create_company(
            conn,
            name=required(form, "name"),
            description=form.get("description", ""),
            budget_usd=money(form, "budget_usd"),
            team_names=teams or None,
        )
    return see(f"/c/{row['slug']}")


@router.post("/c/{slug}/tasks")
async def create_task(request: Request, slug: str = Slug) -> RedirectResponse:
    from company_agents import tasks
    from company_agents.companies import get_company

    form = await form_of(request)
    async with db_of(request).engine.begin() as conn:
        company = await get_company(conn, slug)
        row = await tasks.create_task(
            conn,
            company=str(company["id"]),
            title=required(form, "title"),
            body=form.get("body", ""),
            team=form.get("team") or None,
            agent=form.get("agent") or None,
            priority=whole(form, "priority", 0),
            budget_usd=money(form, "budget_usd"),
        )
    return see(f"/c/{company['slug']}/tasks/{row['id']}")


@router.post("/c/{slug}/tasks/{task_id}/{move}")
async def move_task(request: Request, task_id: UUID, move: str, slug: str = Slug) -> RedirectResponse:
    from company_agents import tasks
    from company_agents.companies import get_company

    if move not in TASK_MOVES:
        raise NotFound(f"no task action {move}")
    form = await form_of(request)
    async with db_of(request).engine.begin() as conn:
        company = await get_company(conn, slug)
        task = await tasks.get_task(conn, task_id)
        if task["company_id"] != company["id"]:
            raise NotFound(f"no task {task_id} in this company")
        ref = str(task["id"])
        if move == "reject":
            await tasks.reject_task(conn, ref, feedback=required(form, "feedback"))
        else:
            moves: dict[str, Any] = {
                "cancel": tasks.cancel_task,
                "approve": tasks.approve_task,
                "requeue": tasks.requeue_task,
            }
            await moves[move](conn, ref)
    return see(f"/c/{company['slug']}/tasks/{task_id}")


@router.post("/c/{slug}/agents")
async def hire_agent(request: Request, slug: str = Slug) -> RedirectResponse:
    from company_agents import agents
    from company_agents.companies import get_company

    form = await form_of(request)
    async with db_of(request).engine.begin() as conn:
        company = await get_company(conn, slug)
        # The answer carries the agent's identity token: it is dropped here, never rendered (the
        # orchestrator hands each run its own credentials).
        await agents.hire_agent(
            conn,
            company=str(company["id"]),
            name=required(form, "name"),
            role=required(form, "role"),
            adapter=form.get("adapter") or None,
            team=form.get("team") or None,
            reports_to=form.get("reports_to") or None,
            model=form.get("model") or None,
            budget_usd=money(form, "budget_usd"),
            approvals=form.get("approvals") or None,
            max_concurrent_tasks=whole(form, "max_concurrent_tasks", 1),
        )
    return see(f"/c/{company['slug']}/agents")


@router.post("/c/{slug}/agents/{agent}/rotate-token")
async def rotate_agent_token(request: Request, slug: str = Slug, agent: str = AGENT) -> RedirectResponse:
    from company_agents import agents, identity
    from company_agents.companies import get_company

    async with db_of(request).engine.begin() as conn:
        company = await get_company(conn, slug)
        row = await agents.get_agent(conn, company["id"], agent)
        # The new token is dropped here: a page never shows one (the old one stops working at once,
        # which is what a rotation from here is for; `agent rotate-token` prints a usable one).
        await identity.rotate_agent_token(conn, row)
    return see(f"/c/{company['slug']}/agents/{row['name']}?rotated=1")


@router.post("/c/{slug}/agents/{agent}/{move}")
async def move_agent(request: Request, move: str, slug: str = Slug, agent: str = AGENT) -> RedirectResponse:
    from company_agents import agents
    from company_agents.companies import get_company

    if move not in AGENT_MOVES:
        raise NotFound(f"no agent action {move}")
    form = await form_of(request)
    async with db_of(request).engine.begin() as conn:
        company = await get_company(conn, slug)
        row = await agents.set_agent_status(conn, company=str(company["id"]), agent=agent, move=move)
    if form.get("next") == "agent":
        return see(f"/c/{company['slug']}/agents/{row['name']}")
    return see(f"/c/{company['slug']}/agents")


@router.post("/c/{slug}/costs/topup")
async def topup(request: Request, slug: str = Slug) -> RedirectResponse:
    from company_agents.budgets import manage
    from company_agents.companies import get_company

    form = await form_of(request)
    usd = money(form, "usd")
    if usd is None:
        raise InvalidInput("usd is required", field="usd")
    async with db_of(request).engine.begin() as conn:
        company = await get_company(conn, slug)
        await manage.topup(
            conn,
            company=str(company["id"]),
            team=required(form, "team"),
            usd=usd,
            reason=form.get("reason", ""),
        )
    return see(f"/c/{company['slug']}/costs")


@router.post("/c/{slug}/approvals/{approval}/{decision}")
async def decide(request: Request, approval: UUID, decision: str, slug: str = Slug) -> RedirectResponse:
    from company_agents import audit
    from company_agents.approvals import store
    from company_agents.companies import get_company

    statuses = {"approve": "approved", "deny": "denied", "ask": "asked_question"}
    if decision not in statuses:
        raise NotFound(f"no approval decision {decision}")
    form = await form_of(request)
    status = statuses[decision]
    edits = edits_of(form) if decision == "approve" else None
    if edits is not None:
        status = "approved_with_edits"
    async with db_of(request).engine.begin() as conn:
        company = await get_company(conn, slug)
        await store.decide(
            conn,
            approval,
            status=status,
            # A denial says why (the agent is told), as on the API.
            reason=required(form, "reason") if decision == "deny" else form.get("reason") or None,
            edits=edits,
            comment=required(form, "text") if decision == "ask" else None,
            actor=audit.LOCAL_USER,
            company_id=company["id"],
        )
    return see(f"/c/{company['slug']}/inbox")


def edits_of(form: dict[str, str]) -> dict[str, Any] | None:
    """The card's edits field: empty is a plain approval; else a JSON object of the changes the agent
    must apply (``{"cost.usd": 30}``, docs/agent-protocol.md), as ``approval approve --edits`` takes."""
    raw = form.get("edits", "")
    if not raw:
        return None
    try:
        edits = json.loads(raw)
    except ValueError:
        raise InvalidInput('edits are a JSON object, like {"cost.usd": 30}', field="edits") from None
    if not isinstance(edits, dict) or not edits:
        raise InvalidInput('edits are a non-empty JSON object, like {"cost.usd": 30}', field="edits")
    return edits
