"""The check as each cost lands, in the transaction that records it (docs/budgets.md).

``after_cost`` runs right after ``ledger.record`` on the same connection and transaction. The common
case is one statement: the run's reservation is lowered by the cost, and the scopes of the run
(company, team, agent, and its workflow and task when they have a budget) are read with what they
spent. Below 80% of every cap that is all. A scope that reached a level records it once per period
and cap (``budget_breaches``, insert-or-nothing), and each new level is audited as
``budget.breach.<level>``. A new hard or catastrophic breach also blocks the queued tasks bound to
the scope (``blocked`` with reason ``budget``) and asks for a ``budget_override`` approval (one
pending per scope).

Concurrency: costs of one company are already serialised by the ledger's company counter row, which
the recording statement holds until commit, so two costs never both see "not yet breached" and both
skip the breach, nor both open an approval.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_UP, Decimal
from typing import Any, LiteralString
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import audit
from company_agents.budgets.levels import LEVELS, level_of, levels_up_to, percent
from company_agents.costs.ledger import RecordedCost
from company_agents.db import driver
from company_agents.leases import RunIdentity

ACTOR = "system:budgets"
# How long a budget_override approval waits for an answer before it expires (as denied).
OVERRIDE_EXPIRY_HOURS = 4

# One round trip on the hot path (db/sql/ca_budget_after_cost.sql). The lease row is already
# share-locked by the ledger's statement in this transaction; lowering the reservation takes it for
# update (no other transaction writes a lease of this run meanwhile but its own renewals, which wait a
# moment). Reservations are read after the envelope was lowered.
SCOPES_AFTER_COST_SQL: LiteralString = """
SELECT n, scope, scope_id, period_start, cap, spent, reserved, envelope
FROM ca_budget_after_cost(%(task_id)s, %(fencing_token)s, %(usd)s)
"""

RECORD_BREACH_SQL: LiteralString = """
INSERT INTO budget_breaches (company_id, scope, scope_id, period_start, level, cap_usd, spent_usd,
                             task_id, run_id)
VALUES (%(company_id)s, %(scope)s, %(scope_id)s, %(period_start)s, %(level)s, %(cap)s, %(spent)s,
        %(task_id)s, %(run_id)s)
ON CONFLICT DO NOTHING
RETURNING id
"""

# The queued tasks bound to a scope: a company's all, a team's those assigned to it or to its agents,
# an agent's those assigned to it. Tasks open to anyone in the company stay queued on a team or agent
# breach (an agent elsewhere may take them); the claim refuses them to the breached scope anyway.
BLOCK_QUEUED_SQL: LiteralString = """
WITH blocked AS (
    UPDATE tasks t SET status = 'blocked', blocked_reason = 'budget', updated_at = now()
    WHERE t.company_id = %(company_id)s AND t.status = 'queued'
      AND CASE %(scope)s
              WHEN 'company' THEN true
              WHEN 'team' THEN t.assigned_team_id = %(scope_id)s
                               OR t.assigned_agent_id IN (SELECT a.id FROM agents a
                                                          WHERE a.team_id = %(scope_id)s)
              WHEN 'agent' THEN t.assigned_agent_id = %(scope_id)s
              WHEN 'workflow' THEN t.workflow_id = %(scope_id)s
              ELSE t.id = %(scope_id)s
          END
    RETURNING t.id, t.company_id
),
events AS (
    INSERT INTO audit_events (company_id, actor, action, subject_type, subject_id, payload)
    SELECT company_id, 'system:budgets', 'task.blocked', 'task', id::text,
           jsonb_build_object('from', 'queued', 'to', 'blocked', 'reason', 'budget',
                              'scope', CAST(%(scope)s AS text), 'scopeId', CAST(%(scope_id)s AS text))
    FROM blocked
)
SELECT count(*) AS blocked FROM blocked
"""

OPEN_OVERRIDE_SQL: LiteralString = """
INSERT INTO approvals (company_id, task_id, run_id, agent_id, kind, action, reasoning, cost_usd, details,
                       requested_by, expires_at)
SELECT %(company_id)s, %(task_id)s, %(run_id)s, %(agent_id)s, 'budget_override', %(action)s, %(reasoning)s,
       %(cost_usd)s, CAST(%(details)s AS jsonb), 'system:budgets',
       now() + make_interval(hours => %(expiry_hours)s)
WHERE NOT EXISTS (
    SELECT 1 FROM approvals p
    WHERE p.company_id = %(company_id)s AND p.kind = 'budget_override' AND p.status = 'pending'
      AND p.details->>'scope' = %(scope)s AND p.details->>'scopeId' = %(scope_id_text)s
)
RETURNING id
"""

# The runs whose work a breach of the scope stops: every lease under it.
RUNS_IN_SCOPE_SQL: LiteralString = """
SELECT l.run_id FROM leases l JOIN agents a ON a.id = l.agent_id
WHERE l.company_id = %(company_id)s
  AND CASE %(scope)s
          WHEN 'company' THEN true
          WHEN 'team' THEN a.team_id = %(scope_id)s
          WHEN 'agent' THEN l.agent_id = %(scope_id)s
          WHEN 'workflow' THEN EXISTS (SELECT 1 FROM tasks t
                                       WHERE t.id = l.task_id AND t.workflow_id = %(scope_id)s)
          ELSE l.task_id = %(scope_id)s
      END
"""


@dataclass(frozen=True)
class ScopeSpend:
    scope: str
    scope_id: UUID
    period_start: date | None
    cap: Decimal
    spent: Decimal

    @property
    def level(self) -> str | None:
        return level_of(self.scope, self.cap, self.spent)


@dataclass(frozen=True)
class Breach:
    scope: str
    scope_id: UUID
    level: str
    cap: Decimal
    spent: Decimal


@dataclass
class Verdict:
    """What the cost means for the run: go on, stop at the next step (``hard``), or be killed now
    (``catastrophic``); plus the other runs a new breach stops (``runs``, by the same level)."""

    level: str | None = None
    scope: str | None = None
    # The run spent past its envelope while its scopes' room is all spent or reserved by others: it
    # stops at its next step and gives its task back to the queue (no scope is over its cap).
    out_of_room: bool = False
    new_breaches: list[Breach] = field(default_factory=list)
    runs: dict[UUID, str] = field(default_factory=dict)

    @property
    def stops(self) -> bool:
        return self.level in ("hard", "catastrophic")


def proposed_cap(cap: Decimal, spent: Decimal, reservation: Decimal) -> Decimal:
    """The cap a ``budget_override`` offers: half as much again, and at least room for two more runs."""
    return max(cap * Decimal("1.5"), spent + 2 * reservation).quantize(Decimal("0.01"), rounding=ROUND_UP)


async def after_cost(
    conn: AsyncConnection,
    ident: RunIdentity,
    *,
    fencing_token: int,
    recorded: RecordedCost,
    reservation_usd: Decimal,
) -> Verdict:
    """Check the run's budgets after ``recorded`` landed (same transaction); see the module docstring."""
    if recorded.duplicate:
        return Verdict()
    usd = recorded.effective_usd or Decimal(0)
    rows = await driver.rows(
        conn,
        SCOPES_AFTER_COST_SQL,
        {"usd": usd, "task_id": ident.task_id, "fencing_token": fencing_token},
    )
    spends = [ScopeSpend(r["scope"], r["scope_id"], r["period_start"], r["cap"], r["spent"]) for r in rows]
    reached = [s for s in spends if s.level is not None]
    verdict = Verdict()
    if rows and rows[0]["envelope"] is not None and usd > rows[0]["envelope"]:
        # Past its envelope: what it spends now comes out of the room; none left, it stops.
        verdict.out_of_room = any(r["spent"] + r["reserved"] >= r["cap"] for r in rows)
    if not reached:
        return verdict
    worst = max(reached, key=lambda s: LEVELS.index(s.level or "soft"))
    verdict.level, verdict.scope = worst.level, worst.scope
    for spend in reached:
        await _record_levels(conn, ident, spend, verdict, reservation_usd)
    return verdict


async def _record_levels(
    conn: AsyncConnection, ident: RunIdentity, spend: ScopeSpend, verdict: Verdict, reservation: Decimal
) -> None:
    for level in levels_up_to(spend.level):
        row = await driver.one(
            conn,
            RECORD_BREACH_SQL,
            {
                "company_id": ident.company_id,
                "scope": spend.scope,
                "scope_id": spend.scope_id,
                "period_start": spend.period_start,
                "level": level,
                "cap": spend.cap,
                "spent": spend.spent,
                "task_id": ident.task_id,
                "run_id": ident.run_id,
            },
        )
        if row is None:
            continue  # already recorded this period, at this cap
        breach = Breach(spend.scope, spend.scope_id, level, spend.cap, spend.spent)
        verdict.new_breaches.append(breach)
        await _audit_breach(conn, ident, spend, level)
        if level in ("hard", "catastrophic"):
            await _stop_scope(conn, ident, spend, level, verdict, reservation)


async def _audit_breach(conn: AsyncConnection, ident: RunIdentity, spend: ScopeSpend, level: str) -> None:
    await audit.record(
        conn,
        actor=ACTOR,
        action=f"budget.breach.{level}",
        subject_type=spend.scope,
        subject_id=spend.scope_id,
        company_id=ident.company_id,
        payload={
            "scope": spend.scope,
            "scopeId": str(spend.scope_id),
            "capUsd": str(spend.cap),
            "spentUsd": str(spend.spent),
            "percentUsed": str(percent(spend.cap, spend.spent)),
            "periodStart": spend.period_start.isoformat() if spend.period_start else None,
            "taskId": str(ident.task_id),
            "runId": str(ident.run_id),
        },
    )


async def _stop_scope(
    conn: AsyncConnection,
    ident: RunIdentity,
    spend: ScopeSpend,
    level: str,
    verdict: Verdict,
    reservation: Decimal,
) -> None:
    scope_params = {"company_id": ident.company_id, "scope": spend.scope, "scope_id": spend.scope_id}
    await driver.one(conn, BLOCK_QUEUED_SQL, scope_params)
    for r in await driver.rows(conn, RUNS_IN_SCOPE_SQL, scope_params):
        if verdict.runs.get(r["run_id"]) != "catastrophic":
            verdict.runs[r["run_id"]] = level
    if level != "hard":
        return  # the hard breach recorded just before it opened the approval
    offer = proposed_cap(spend.cap, spend.spent, reservation)
    details = {
        "scope": spend.scope,
        "scopeId": str(spend.scope_id),
        "capUsd": str(spend.cap),
        "spentUsd": str(spend.spent),
        "proposedCapUsd": str(offer),
        "periodStart": spend.period_start.isoformat() if spend.period_start else None,
    }
    params: dict[str, Any] = {
        **scope_params,
        "scope_id_text": str(spend.scope_id),
        "task_id": ident.task_id,
        "run_id": ident.run_id,
        "agent_id": ident.agent_id,
        "action": f"Raise the {spend.scope} budget from {spend.cap} to {offer} USD",
        "reasoning": (
            f"The {spend.scope} spent {spend.spent} USD of its {spend.cap} USD cap: its work is blocked "
            'until the cap is raised (approve, optionally with edits {"capUsd": …}) or the period ends.'
        ),
        "cost_usd": offer - spend.cap,
        "details": json.dumps(details),
        "expiry_hours": OVERRIDE_EXPIRY_HOURS,
    }
    opened = await driver.one(conn, OPEN_OVERRIDE_SQL, params)
    if opened is not None:
        await audit.record(
            conn,
            actor=ACTOR,
            action="approval.requested",
            subject_type="approval",
            subject_id=opened["id"],
            company_id=ident.company_id,
            payload={"kind": "budget_override", **details, "taskId": str(ident.task_id)},
        )
