"""``/v1/companies/{company}/approvals`` and ``/v1/approvals/{approval}``: list, show, approve
(with edits), deny, comment (a question for the agent). A decision is made once; a second one is 409
``approval_closed``. The company's rules are in ``approval_rules``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request

from company_agents.api.deps import (
    CompanyRef,
    Db,
    Reader,
    Writer,
    actor_of,
    company_for,
)
from company_agents.api.middleware import request_id_of
from company_agents.api.schemas.approvals import Approval, ApprovalApprove, ApprovalComment, ApprovalDeny
from company_agents.api.schemas.common import Envelope, ListEnvelope, error_responses, one, page

router = APIRouter(tags=["approvals"])

ApprovalRef = Annotated[
    str, Path(pattern=r"^(apr_)?[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
]
ApprovalStatus = Literal["pending", "approved", "approved_with_edits", "denied", "asked_question", "expired"]
# At most this many approvals in one answer (pending ones are few; the rest is history).
LIST_LIMIT = 200


def _public(row: dict[str, Any]) -> Any:
    from company_agents.approvals.store import to_public

    return Approval.of(to_public(row))


@router.get(
    "/companies/{company}/approvals",
    operation_id="listApprovals",
    response_model=ListEnvelope[Approval],
    responses=error_responses(403, 404),
)
async def list_approvals(
    request: Request,
    company: CompanyRef,
    principal: Reader,
    db: Db,
    status: Annotated[list[ApprovalStatus] | None, Query(description="One or more statuses.")] = None,
) -> Any:
    """The company's approvals, oldest first (at most 200)."""
    from company_agents.approvals import store

    async with db.engine.connect() as conn:
        current = await company_for(conn, principal, company)
        rows = await store.list_approvals(
            conn, company_id=current["id"], status=list(status) if status else None, limit=LIST_LIMIT
        )
    return page(request_id_of(request), [_public(r) for r in rows], None)


@router.get(
    "/approvals/{approval}",
    operation_id="getApproval",
    response_model=Envelope[Approval],
    responses=error_responses(403, 404),
)
async def get_approval(request: Request, approval: ApprovalRef, principal: Reader, db: Db) -> Any:
    """One approval."""
    from company_agents.approvals import store

    async with db.engine.connect() as conn:
        row = await store.get_approval(conn, approval, company_id=principal.company_id)
    return one(request_id_of(request), _public(row))


@router.post(
    "/approvals/{approval}/approve",
    operation_id="approveApproval",
    response_model=Envelope[Approval],
    responses=error_responses(403, 404, 409, 413),
)
async def approve(
    request: Request, approval: ApprovalRef, body: ApprovalApprove, principal: Writer, db: Db
) -> Any:
    """Approve; with ``edits``, approve with edits the agent must apply."""
    from company_agents.approvals import store

    async with db.engine.begin() as conn:
        row = await store.decide(
            conn,
            approval,
            status="approved_with_edits" if body.edits else "approved",
            edits=body.edits or None,
            reason=body.reason,
            actor=actor_of(principal),
            company_id=principal.company_id,
        )
    return one(request_id_of(request), _public(row))


@router.post(
    "/approvals/{approval}/deny",
    operation_id="denyApproval",
    response_model=Envelope[Approval],
    responses=error_responses(403, 404, 409, 413),
)
async def deny(request: Request, approval: ApprovalRef, body: ApprovalDeny, principal: Writer, db: Db) -> Any:
    """Deny, saying why (the agent is told)."""
    from company_agents.approvals import store

    async with db.engine.begin() as conn:
        row = await store.decide(
            conn,
            approval,
            status="denied",
            reason=body.reason,
            actor=actor_of(principal),
            company_id=principal.company_id,
        )
    return one(request_id_of(request), _public(row))


@router.post(
    "/approvals/{approval}/comment",
    operation_id="commentApproval",
    response_model=Envelope[Approval],
    responses=error_responses(403, 404, 409, 413),
)
async def comment(
    request: Request, approval: ApprovalRef, body: ApprovalComment, principal: Writer, db: Db
) -> Any:
    """Ask the agent a question: the approval is answered ``asked_question`` with the text in its
    comments, and the agent answers by asking again (a new approval). Refused (409) when already
    answered or expired, as every decision is."""
    from company_agents.approvals import store

    async with db.engine.begin() as conn:
        row = await store.decide(
            conn,
            approval,
            status="asked_question",
            comment=body.text,
            actor=actor_of(principal),
            company_id=principal.company_id,
        )
    return one(request_id_of(request), _public(row))
