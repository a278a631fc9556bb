"""``/v1/companies/{company}/approval-rules``: the company's blanket rules that answer matching
requests at once (list, add, remove).

Adding or removing a rule needs ``admin``, not ``write``: a rule answers requests nobody has seen yet
(an ``auto_approve`` rule lets agents go ahead without a person, and removing an ``auto_deny`` rule
does the same), which is a policy change, where a ``write`` token answers one request it was shown.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from company_agents.api.deps import (
    Admin,
    CompanyRef,
    Db,
    Reader,
    actor_of,
    company_for,
)
from company_agents.api.middleware import request_id_of
from company_agents.api.schemas.approvals import ApprovalRule, ApprovalRuleCreate
from company_agents.api.schemas.common import Envelope, ListEnvelope, error_responses, one, page

router = APIRouter(tags=["approvals"])

RuleRef = Annotated[
    str,
    Path(
        pattern=r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$|^[0-9a-f]{6,32}$",
        description="The rule's id (or a unique prefix of 6 or more hex digits).",
    ),
]


def _public(row: dict[str, Any]) -> Any:
    from company_agents.approvals.store import rule_public

    return ApprovalRule.of(rule_public(row))


@router.get(
    "/companies/{company}/approval-rules",
    operation_id="listApprovalRules",
    response_model=ListEnvelope[ApprovalRule],
    responses=error_responses(403, 404),
)
async def list_rules(request: Request, company: CompanyRef, principal: Reader, db: Db) -> Any:
    """The company's rules, oldest first (a company has a handful)."""
    from company_agents.approvals import store

    async with db.engine.connect() as conn:
        current = await company_for(conn, principal, company)
        rows = await store.list_rules(conn, company=str(current["id"]))
    return page(request_id_of(request), [_public(r) for r in rows], None)


@router.post(
    "/companies/{company}/approval-rules",
    operation_id="addApprovalRule",
    status_code=201,
    response_model=Envelope[ApprovalRule],
    responses=error_responses(403, 404, 413),
)
async def add_rule(
    request: Request, company: CompanyRef, body: ApprovalRuleCreate, principal: Admin, db: Db
) -> Any:
    """Add a rule (admin): a request matching every criterion given is answered at once, deny rules
    before approve rules. At least one criterion (action, category, maxUsd, agent)."""
    from company_agents.approvals import store

    async with db.engine.begin() as conn:
        current = await company_for(conn, principal, company)
        row = await store.add_rule(
            conn,
            company=str(current["id"]),
            effect=body.effect,
            actor=actor_of(principal),
            action_pattern=body.action,
            category=body.category,
            max_usd=Decimal(body.max_usd) if body.max_usd is not None else None,
            agent=body.agent,
            reason=body.reason,
        )
    return one(request_id_of(request), _public(row))


@router.delete(
    "/companies/{company}/approval-rules/{rule}",
    operation_id="removeApprovalRule",
    response_model=Envelope[ApprovalRule],
    responses=error_responses(403, 404),
)
async def remove_rule(request: Request, company: CompanyRef, rule: RuleRef, principal: Admin, db: Db) -> Any:
    """Remove a rule (admin); the answer is the rule as it was."""
    from company_agents.approvals import store

    async with db.engine.begin() as conn:
        current = await company_for(conn, principal, company)
        row = await store.remove_rule(conn, company=str(current["id"]), rule=rule, actor=actor_of(principal))
    return one(request_id_of(request), _public(row))
