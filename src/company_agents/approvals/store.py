"""Approval rows and their conditional updates: create (one pending per task and action), decide (once,
before expiry), expire.

Lock order, shared with every writer of a leased task (``leases``' docstring): the task's lease row, then
the approval, then the task. A request holds the lease ``FOR SHARE`` while it inserts (a fenced write: a
run that lost its lease creates nothing); a decision locks the lease (if the task has one) before it
updates the approval, so it queues behind a run parking its task (``lifecycle.park_run``) instead of
deadlocking with it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import audit, leases
from company_agents.approvals import lifecycle, policy
from company_agents.db.schema import agents, approval_rules, approvals
from company_agents.db.schema.approvals import APPROVAL_STATUSES
from company_agents.errors import ApprovalClosed, InvalidInput, NotFound
from company_agents.ids import IdKind, resolve_id
from company_agents.task_states import ACTIVE_SQL

# What a person may answer; ``expired`` is the sweep's.
DECISIONS = ("approved", "approved_with_edits", "denied", "asked_question")
# A decision the agent may act on: asking the same thing again returns it rather than a new request.
STANDING = ("approved", "approved_with_edits")
# The agent must not go ahead.
REFUSALS = ("denied", "expired")
EXPIRY_ACTOR = "system:approval_expiry"


@dataclass(frozen=True)
class NewApproval:
    """The body of a ``request_approval`` call."""

    action: str
    reasoning: str = ""
    cost_usd: Decimal | None = None
    cost_tokens: int | None = None
    side_effects: Sequence[str] = ()
    if_denied: str = ""
    categories: frozenset[str] = field(default_factory=frozenset)


def usd_text(value: Decimal | None) -> str | None:
    """Money in JSON: a string, without the column's trailing zeros (``12.5``, not ``12.50000000``)."""
    return format(value.normalize(), "f") if value is not None else None


def to_public(row: dict[str, Any]) -> dict[str, Any]:
    """The approval object of the API, the tool and ``--json`` (money as strings)."""

    def iso(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    def opt(value: Any) -> str | None:
        return str(value) if value is not None else None

    return {
        "id": str(row["id"]),
        "companyId": str(row["company_id"]),
        "taskId": opt(row["task_id"]),
        "runId": opt(row["run_id"]),
        "agentId": opt(row["agent_id"]),
        "kind": row["kind"],
        "status": row["status"],
        "action": row["action"],
        "reasoning": row["reasoning"],
        "cost": {"usd": usd_text(row["cost_usd"]), "tokens": row["cost_tokens"]},
        "sideEffects": list(row["side_effects"] or []),
        "ifDenied": row["if_denied"],
        "details": dict(row["details"] or {}),
        "edits": row["edits"],
        "decisionReason": row["decision_reason"],
        "comments": list(row["comments"] or []),
        "requestedBy": row["requested_by"],
        "decidedBy": row["decided_by"],
        "requestedAt": iso(row["created_at"]),
        "expiresAt": iso(row["expires_at"]),
        "decidedAt": iso(row["decided_at"]),
    }


# Ids people type: a unique prefix of 6+ hex digits works (ids.py), with or without the ``apr_`` marker.
APPROVAL = IdKind("approval", approvals, label="action", prefix="apr_")
RULE = IdKind("approval rule", approval_rules, label="action_pattern")


async def get_approval(
    conn: AsyncConnection, ref: str | UUID, *, company_id: UUID | None = None
) -> dict[str, Any]:
    approval_id = await resolve_id(conn, APPROVAL, ref, company_id=company_id)
    query = select(approvals).where(approvals.c.id == approval_id)
    if company_id is not None:
        query = query.where(approvals.c.company_id == company_id)
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise NotFound(f"no approval {ref!s}", approval=str(ref))
    return dict(row)


async def list_approvals(
    conn: AsyncConnection,
    *,
    company_id: UUID,
    status: Sequence[str] | None = None,
    task_id: UUID | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    query = select(approvals).where(approvals.c.company_id == company_id)
    if status:
        unknown = [s for s in status if s not in APPROVAL_STATUSES]
        if unknown:
            raise InvalidInput(f"unknown approval status {', '.join(unknown)}", field="status")
        query = query.where(approvals.c.status.in_(list(status)))
    if task_id is not None:
        query = query.where(approvals.c.task_id == task_id)
    query = query.order_by(approvals.c.created_at).limit(limit)
    return [dict(r) for r in (await conn.execute(query)).mappings()]


LOCK_LEASE_SHARE_SQL = text(
    f"""
    SELECT l.task_id FROM leases l JOIN tasks t ON t.id = l.task_id
    WHERE l.task_id = :task_id AND l.fencing_token = :fencing_token AND l.token_hash = :token_hash
      AND t.fencing_token = :fencing_token AND t.status IN {ACTIVE_SQL}
    FOR SHARE OF l
    """
)


async def _latest(conn: AsyncConnection, task_id: UUID, action: str, statuses: Sequence[str]) -> Any:
    query = (
        select(approvals)
        .where(approvals.c.task_id == task_id, approvals.c.action == action, approvals.c.status.in_(statuses))
        .order_by(approvals.c.created_at.desc())
        .limit(1)
    )
    row = (await conn.execute(query)).mappings().first()
    return dict(row) if row is not None else None


async def request(
    conn: AsyncConnection,
    ident: leases.RunIdentity,
    *,
    fencing_token: int,
    new: NewApproval,
    expiry_seconds: float,
) -> tuple[dict[str, Any], bool]:
    """The run's approval for ``new.action``, and whether this call created it.

    A pending one for the same task and action is returned as it is (asking twice waits on one
    question); so is a standing approval (approved, with or without edits), and a refusal given to
    this run. Otherwise a new row, which
    the company's rules or the agent's policy may answer at once. Fenced: a stale run gets
    ``StaleFencingToken`` and nothing is written."""
    action = new.action.strip()
    held = (
        await conn.execute(
            LOCK_LEASE_SHARE_SQL,
            {"task_id": ident.task_id, "fencing_token": fencing_token, "token_hash": ident.token_hash},
        )
    ).first()
    if held is None:
        raise leases.stale_error(ident, fencing_token, "request_approval")
    # Asking again returns the question still open, a standing approval, or a refusal this run was
    # given; after a question (or a refusal in an earlier run, re-queued by a person) it is asked anew.
    latest = await _latest(conn, ident.task_id, action, APPROVAL_STATUSES)
    if latest is not None and (
        latest["status"] in ("pending", *STANDING)
        or (latest["status"] in REFUSALS and latest["run_id"] == ident.run_id)
    ):
        return latest, False
    agent = (
        (await conn.execute(select(agents.c.approval_policy).where(agents.c.id == ident.agent_id)))
        .mappings()
        .one()
    )
    rules = [
        dict(r)
        for r in (
            await conn.execute(
                select(approval_rules)
                .where(approval_rules.c.company_id == ident.company_id)
                .order_by(approval_rules.c.created_at)
            )
        ).mappings()
    ]
    answer = policy.verdict(
        policy.Policy.from_json(agent["approval_policy"]),
        rules,
        policy.Request(
            action=action, agent_id=ident.agent_id, cost_usd=new.cost_usd, categories=new.categories
        ),
    )
    decided = answer.status != "pending"
    values: dict[str, Any] = {
        "company_id": ident.company_id,
        "task_id": ident.task_id,
        "run_id": ident.run_id,
        "agent_id": ident.agent_id,
        "kind": "action",
        "action": action,
        "reasoning": new.reasoning,
        "cost_usd": new.cost_usd,
        "cost_tokens": new.cost_tokens,
        "side_effects": list(new.side_effects),
        "if_denied": new.if_denied,
        "details": {"categories": sorted(new.categories), "why": answer.reason},
        "status": answer.status,
        "requested_by": f"agent:{ident.agent_id}",
        "expires_at": text("now() + make_interval(secs => :expiry)").bindparams(expiry=float(expiry_seconds)),
    }
    if decided:
        values.update(decided_by=answer.decided_by, decision_reason=answer.reason, decided_at=text("now()"))
    insert = (
        pg_insert(approvals)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["task_id", "action"], index_where=text("status = 'pending'"))
        .returning(approvals)
    )
    created = (await conn.execute(insert)).mappings().first()
    if created is None:  # a concurrent call of the same run created it first
        existing = await _latest(conn, ident.task_id, action, ("pending",))
        if existing is None:
            raise ApprovalClosed("the approval was answered while it was being asked again")
        return existing, False
    row = dict(created)
    await audit.record(
        conn,
        actor=row["requested_by"],
        action="approval.requested",
        subject_type="approval",
        subject_id=row["id"],
        company_id=row["company_id"],
        payload={
            "taskId": str(row["task_id"]),
            "action": action,
            "costUsd": str(new.cost_usd) if new.cost_usd is not None else None,
            "status": row["status"],
        },
    )
    if decided:
        await _audit_decided(conn, row)
    return row, True


async def _audit_decided(conn: AsyncConnection, row: dict[str, Any]) -> None:
    await audit.record(
        conn,
        actor=lifecycle.decider_actor(row),
        action="approval.expired" if row["status"] == "expired" else "approval.decided",
        subject_type="approval",
        subject_id=row["id"],
        company_id=row["company_id"],
        payload={
            "taskId": str(row["task_id"]) if row["task_id"] else None,
            "kind": row["kind"],
            "status": row["status"],
            "reason": (row["decision_reason"] or "")[:500],
            "edits": row["edits"],
            "decidedBy": row["decided_by"],
        },
    )


DECIDE_SQL = text(
    """
    UPDATE approvals
    SET status = :status, edits = CAST(:edits AS jsonb), decision_reason = :reason,
        decided_by = :actor, decided_at = now(), updated_at = now(),
        comments = CASE WHEN CAST(:comment AS text) IS NULL THEN comments
                        ELSE comments || jsonb_build_array(jsonb_build_object(
                             'at', now(), 'by', CAST(:actor AS text), 'text', CAST(:comment AS text))) END
    WHERE id = :id AND status = 'pending' AND expires_at > now()
    RETURNING *
    """
)

LOCK_TASK_LEASE_SQL = text("SELECT task_id FROM leases WHERE task_id = :task_id FOR UPDATE")


async def decide(
    conn: AsyncConnection,
    ref: str | UUID,
    *,
    status: str,
    actor: str,
    reason: str | None = None,
    edits: dict[str, Any] | None = None,
    comment: str | None = None,
    company_id: UUID | None = None,
) -> dict[str, Any]:
    """Answer a pending approval, once: a conditional update that refuses (``ApprovalClosed``) an
    approval already answered or past its expiry. The task follows in the same transaction
    (``lifecycle.after_decision``)."""
    if status not in DECISIONS:
        raise InvalidInput(f"a decision is one of {', '.join(DECISIONS)}", field="status")
    if status == "approved_with_edits" and not edits:
        raise InvalidInput("approve with edits needs a non-empty edits object", field="edits")
    if status != "approved_with_edits" and edits is not None:
        raise InvalidInput("edits go with approved_with_edits only", field="edits")
    if status == "denied" and not (reason or "").strip():
        raise InvalidInput("say why it is denied (--reason)", field="reason")
    if status == "asked_question" and not (comment or "").strip():
        raise InvalidInput("a question needs its text (--text)", field="text")
    current = await get_approval(conn, ref, company_id=company_id)
    if current["task_id"] is not None:
        await conn.execute(LOCK_TASK_LEASE_SQL, {"task_id": current["task_id"]})
    updated = (
        (
            await conn.execute(
                DECIDE_SQL,
                {
                    "id": current["id"],
                    "status": status,
                    "edits": json.dumps(edits) if edits is not None else None,
                    "reason": reason if reason is not None else comment,
                    "actor": actor,
                    "comment": comment,
                },
            )
        )
        .mappings()
        .first()
    )
    if updated is None:
        now = (await conn.execute(text("SELECT now()"))).scalar_one()
        latest = await get_approval(conn, current["id"])
        if latest["status"] == "pending" and latest["expires_at"] <= now:
            raise ApprovalClosed(
                f"approval {latest['id']} expired at {latest['expires_at'].isoformat()}",
                approval=str(latest["id"]),
                status="expired",
            )
        raise ApprovalClosed(
            f"approval {latest['id']} is already {latest['status']}",
            approval=str(latest["id"]),
            status=latest["status"],
        )
    row = dict(updated)
    await _audit_decided(conn, row)
    await lifecycle.after_decision(conn, row)
    return row


EXPIRE_SQL = text(
    """
    UPDATE approvals
    SET status = 'expired', decided_by = :actor, decided_at = now(), updated_at = now(),
        decision_reason = 'no answer before it expired'
    WHERE id IN (
        SELECT id FROM approvals
        WHERE status = 'pending' AND expires_at <= now() AND (CAST(:id AS uuid) IS NULL OR id = :id)
        ORDER BY expires_at LIMIT :batch FOR UPDATE SKIP LOCKED
    ) AND status = 'pending'
    RETURNING *
    """
)


async def expire_due(
    conn: AsyncConnection, *, batch: int = 100, only: UUID | None = None
) -> list[dict[str, Any]]:
    """Expire pending approvals past their time (``only``: just that one); each is treated as denied."""
    rows = [
        dict(r)
        for r in (
            await conn.execute(EXPIRE_SQL, {"actor": EXPIRY_ACTOR, "batch": batch, "id": only})
        ).mappings()
    ]
    for row in rows:
        await _audit_decided(conn, row)
        await lifecycle.after_decision(conn, row)
    return rows


async def add_rule(
    conn: AsyncConnection,
    *,
    company: str,
    effect: str,
    actor: str,
    action_pattern: str | None = None,
    category: str | None = None,
    max_usd: Decimal | None = None,
    agent: str | None = None,
    reason: str = "",
) -> dict[str, Any]:
    """A company-wide rule that answers matching requests at once (``policy.verdict``)."""
    from company_agents.agents import get_agent
    from company_agents.companies import get_company
    from company_agents.db.schema.approvals import RULE_EFFECTS

    comp = await get_company(conn, company)
    if effect not in RULE_EFFECTS:
        raise InvalidInput(f"a rule's effect is one of {', '.join(RULE_EFFECTS)}", field="effect")
    if category is not None and category not in policy.CATEGORIES:
        raise InvalidInput(f"unknown category {category!r}", field="category")
    if max_usd is not None and max_usd < 0:
        raise InvalidInput("max USD must not be negative", field="maxUsd")
    if not (action_pattern or category or max_usd is not None or agent):
        raise InvalidInput(
            "a rule needs at least one criterion (--action, --category, --max-usd, --agent)", field="action"
        )
    agent_row = await get_agent(conn, comp["id"], agent) if agent else None
    row = (
        (
            await conn.execute(
                pg_insert(approval_rules)
                .values(
                    company_id=comp["id"],
                    effect=effect,
                    action_pattern=action_pattern,
                    category=category,
                    max_usd=max_usd,
                    agent_id=agent_row["id"] if agent_row else None,
                    reason=reason,
                    created_by=actor,
                )
                .returning(approval_rules)
            )
        )
        .mappings()
        .one()
    )
    await audit.record(
        conn,
        actor=actor,
        action="approval.rule_added",
        subject_type="approval_rule",
        subject_id=row["id"],
        company_id=comp["id"],
        payload={"effect": effect, "action": action_pattern, "category": category, "reason": reason[:500]},
    )
    return dict(row)


async def list_rules(conn: AsyncConnection, *, company: str) -> list[dict[str, Any]]:
    from company_agents.companies import get_company

    comp = await get_company(conn, company)
    query = (
        select(approval_rules)
        .where(approval_rules.c.company_id == comp["id"])
        .order_by(approval_rules.c.created_at)
    )
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def remove_rule(conn: AsyncConnection, *, company: str, rule: str, actor: str) -> dict[str, Any]:
    from company_agents.companies import get_company

    comp = await get_company(conn, company)
    rule_id = await resolve_id(conn, RULE, rule, company_id=comp["id"])
    row = (
        (
            await conn.execute(
                approval_rules.delete()
                .where(approval_rules.c.id == rule_id, approval_rules.c.company_id == comp["id"])
                .returning(approval_rules)
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"no approval rule {rule}", rule=rule)
    await audit.record(
        conn,
        actor=actor,
        action="approval.rule_removed",
        subject_type="approval_rule",
        subject_id=row["id"],
        company_id=comp["id"],
        payload={"effect": row["effect"]},
    )
    return dict(row)


def rule_public(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "companyId": str(row["company_id"]),
        "effect": row["effect"],
        "action": row["action_pattern"],
        "category": row["category"],
        "maxUsd": usd_text(row["max_usd"]),
        "agentId": str(row["agent_id"]) if row["agent_id"] is not None else None,
        "reason": row["reason"],
        "createdBy": row["created_by"],
        "createdAt": row["created_at"].isoformat(),
    }
