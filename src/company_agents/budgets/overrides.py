"""What a decided ``budget_override`` approval does to its scope (docs/budgets.md).

The approvals' decide function calls ``apply_override_decision`` in the transaction of the decision,
with the approval row as decided. Approved (or approved with edits ``{"capUsd": …}``): the scope's cap
is raised for the current period (a ``budget_grants`` override row), and the scope's budget-blocked
tasks go back to the queue. Denied or expired: nothing changes; the tasks stay blocked until a person
raises the budget (``budget set``), tops it up, or the period ends and they are re-queued by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, LiteralString
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import audit
from company_agents.budgets.check import ACTOR
from company_agents.db import driver
from company_agents.errors import InvalidInput
from company_agents.tasks import NOTIFY_SQL, TASKS_CHANNEL

APPROVED = ("approved", "approved_with_edits")

GRANT_OVERRIDE_SQL: LiteralString = """
INSERT INTO budget_grants (company_id, scope, scope_id, kind, usd, day, approval_id, reason, created_by)
SELECT c.id, %(scope)s, %(scope_id)s, 'override', %(usd)s, (now() AT TIME ZONE c.time_zone)::date,
       %(approval_id)s, %(reason)s, %(actor)s
FROM companies c WHERE c.id = %(company_id)s
RETURNING id, day
"""

# The scope's budget-blocked tasks back to the queue, with one audit event each. A task blocked by
# another scope that is still over its cap is claimable again but is not claimed: the claim checks.
REQUEUE_BLOCKED_SQL: LiteralString = """
WITH requeued AS (
    UPDATE tasks t SET status = 'queued', blocked_reason = NULL, run_after = NULL, updated_at = now()
    WHERE t.company_id = %(company_id)s AND t.status = 'blocked' AND t.blocked_reason = 'budget'
      AND CASE %(scope)s
              WHEN 'company' THEN true
              WHEN 'team' THEN t.assigned_team_id = %(scope_id)s
                               OR t.assigned_agent_id IN (SELECT a.id FROM agents a
                                                          WHERE a.team_id = %(scope_id)s)
                               OR EXISTS (SELECT 1 FROM runs r JOIN agents a ON a.id = r.agent_id
                                          WHERE r.task_id = t.id AND r.attempt = t.attempt
                                            AND a.team_id = %(scope_id)s)
              WHEN 'agent' THEN t.assigned_agent_id = %(scope_id)s
                                OR EXISTS (SELECT 1 FROM runs r
                                           WHERE r.task_id = t.id AND r.attempt = t.attempt
                                             AND r.agent_id = %(scope_id)s)
              WHEN 'workflow' THEN t.workflow_id = %(scope_id)s
              ELSE t.id = %(scope_id)s
          END
    RETURNING t.id, t.company_id
),
events AS (
    INSERT INTO audit_events (company_id, actor, action, subject_type, subject_id, payload)
    SELECT company_id, %(actor)s, 'task.requeued', 'task', id::text,
           jsonb_build_object('from', 'blocked', 'to', 'queued', 'reason', 'budget_override',
                              'approvalId', CAST(%(approval_id)s AS text))
    FROM requeued
)
SELECT id FROM requeued
"""


def _new_cap(row: Mapping[str, Any]) -> Decimal:
    details = row.get("details") or {}
    edits = row.get("edits") or {}
    raw = edits.get("capUsd", details.get("proposedCapUsd"))
    try:
        cap = Decimal(str(raw))
    except (InvalidOperation, ValueError) as exc:
        raise InvalidInput(f"a budget override needs a cap in USD, not {raw!r}", field="capUsd") from exc
    if not cap.is_finite() or cap <= 0:
        raise InvalidInput(f"a budget override's cap must be a positive amount, not {raw!r}", field="capUsd")
    return cap


async def apply_override_decision(conn: AsyncConnection, approval_row: Mapping[str, Any]) -> dict[str, Any]:
    """Apply a decided ``budget_override`` (see the module docstring); returns what was done:
    ``{"applied": bool, "capUsd": str | None, "requeued": [task ids]}``."""
    if approval_row.get("kind") != "budget_override":
        raise InvalidInput("not a budget_override approval", field="kind")
    if approval_row.get("status") not in APPROVED:
        return {"applied": False, "capUsd": None, "requeued": []}
    details = approval_row.get("details") or {}
    scope, scope_id = str(details["scope"]), UUID(str(details["scopeId"]))
    company_id = approval_row["company_id"]
    cap = _new_cap(approval_row)
    actor = str(approval_row.get("decided_by") or ACTOR)
    params = {
        "company_id": company_id,
        "scope": scope,
        "scope_id": scope_id,
        "usd": cap,
        "approval_id": approval_row["id"],
        "reason": str(approval_row.get("decision_reason") or "budget_override approved"),
        "actor": actor,
    }
    await driver.one(conn, GRANT_OVERRIDE_SQL, params)
    requeued = [str(r["id"]) for r in await driver.rows(conn, REQUEUE_BLOCKED_SQL, params)]
    await audit.record(
        conn,
        actor=actor,
        action="budget.override",
        subject_type=scope,
        subject_id=scope_id,
        company_id=company_id,
        payload={
            "scope": scope,
            "scopeId": str(scope_id),
            "capUsd": str(cap),
            "previousCapUsd": details.get("capUsd"),
            "approvalId": str(approval_row["id"]),
            "requeued": len(requeued),
        },
    )
    if requeued:
        await conn.execute(NOTIFY_SQL, {"channel": TASKS_CHANNEL, "payload": str(company_id)})
    return {"applied": True, "capUsd": str(cap), "requeued": requeued}
