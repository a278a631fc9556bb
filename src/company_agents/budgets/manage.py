"""``budget set|show`` and ``costs topup``: a person's view of the caps and their changes (docs/budgets.md).

Caps are read through the same SQL function the claim and the cost check use (``ca_budget_scopes``), so
what ``budget show`` prints is what is enforced.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, LiteralString
from uuid import UUID

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import audit
from company_agents.agents import get_agent, get_team
from company_agents.budgets.levels import level_of, percent
from company_agents.companies import get_company
from company_agents.db import driver
from company_agents.db.schema import agents, companies, tasks, teams
from company_agents.db.schema.companies import FISCAL_PERIODS
from company_agents.errors import Conflict, InvalidInput
from company_agents.task_states import TERMINAL, sql_list
from company_agents.tasks import get_task

# The share of the company's cap held back from the teams' default shares, for top-ups.
RESERVE_SHARE = Decimal("0.2")
# Caps are NUMERIC(14, 4): derived amounts are shown to the same precision.
CENT_FRACTIONS = Decimal("0.0001")

SHOW_SQL: LiteralString = f"""
SELECT b.scope, b.scope_id, b.name, b.period_start, b.cap, b.spent, b.reserved FROM (
    SELECT b.n, b.scope, b.scope_id, c.slug AS name, b.period_start, b.cap, b.spent, b.reserved
    FROM companies c CROSS JOIN LATERAL ca_budget_scopes(c.id, NULL, NULL) b
    WHERE c.id = %(company_id)s
    UNION ALL
    SELECT b.n, b.scope, b.scope_id, t.name, b.period_start, b.cap, b.spent, b.reserved
    FROM teams t CROSS JOIN LATERAL ca_budget_scopes(t.company_id, t.id, NULL) b
    WHERE t.company_id = %(company_id)s AND b.scope = 'team'
    UNION ALL
    SELECT b.n, b.scope, b.scope_id, a.name, b.period_start, b.cap, b.spent, b.reserved
    FROM agents a CROSS JOIN LATERAL ca_budget_scopes(a.company_id, NULL, a.id) b
    WHERE a.company_id = %(company_id)s AND a.status <> 'retired' AND b.scope = 'agent'
    UNION ALL
    SELECT 4, 'workflow', w.workflow_id, w.workflow_id::text, p.period_start, wb.cap, wb.spent, wb.reserved
    FROM workflow_budgets w
    CROSS JOIN (SELECT b.period_start FROM ca_budget_scopes(%(company_id)s, NULL, NULL) b) p
    CROSS JOIN LATERAL ca_workflow_budget(w.workflow_id, p.period_start) wb
    WHERE w.company_id = %(company_id)s
    UNION ALL
    SELECT 5, 'task', t.id, t.title, NULL, tb.cap, tb.spent, coalesce(l.reserved_usd, 0)
    FROM tasks t
    LEFT JOIN agents a ON a.id = t.assigned_agent_id
    LEFT JOIN leases l ON l.task_id = t.id
    CROSS JOIN LATERAL ca_task_budget(t.id, t.budget_usd, a.task_budget_usd) tb
    WHERE t.company_id = %(company_id)s AND t.status NOT IN {sql_list(tuple(sorted(TERMINAL)))}
      AND tb.cap IS NOT NULL
) b
ORDER BY b.n, b.name
"""

# A workflow's budget is its row here (workflows come later); no row: no workflow budget.
SET_WORKFLOW_SQL: LiteralString = """
INSERT INTO workflow_budgets (workflow_id, company_id, budget_usd)
VALUES (%(workflow_id)s, %(company_id)s, %(usd)s)
ON CONFLICT (workflow_id) DO UPDATE SET budget_usd = EXCLUDED.budget_usd
WHERE workflow_budgets.company_id = EXCLUDED.company_id
RETURNING workflow_id
"""
UNSET_WORKFLOW_SQL: LiteralString = """
DELETE FROM workflow_budgets WHERE workflow_id = %(workflow_id)s AND company_id = %(company_id)s
RETURNING workflow_id
"""

TOPUPS_SQL: LiteralString = """
SELECT coalesce(sum(g.usd), 0) AS usd FROM budget_grants g
WHERE g.company_id = %(company_id)s AND g.scope = 'team' AND g.kind = 'topup' AND g.day >= %(period_start)s
"""

TOPUP_SQL: LiteralString = """
INSERT INTO budget_grants (company_id, scope, scope_id, kind, usd, day, reason, created_by)
SELECT c.id, 'team', %(team_id)s, 'topup', %(usd)s, (now() AT TIME ZONE c.time_zone)::date, %(reason)s,
       %(actor)s
FROM companies c WHERE c.id = %(company_id)s
RETURNING id, day
"""

# The same lock a claim of the company takes: a top-up and a claim never read the room at once.
COMPANY_LOCK_SQL: LiteralString = (
    "SELECT pg_advisory_xact_lock(hashtextextended(CAST(%(company_id)s AS text), 4243))"
)


def _public(row: dict[str, Any]) -> dict[str, Any]:
    cap, spent, reserved = row["cap"], row["spent"], row["reserved"]
    return {
        "scope": row["scope"],
        "scopeId": row["scope_id"],
        "name": row["name"],
        "periodStart": row["period_start"],
        "capUsd": cap,
        "spentUsd": spent,
        "reservedUsd": reserved,
        "remainingUsd": cap - spent - reserved,
        "percentUsed": percent(cap, spent),
        "level": level_of(row["scope"], cap, spent),
    }


async def show(conn: AsyncConnection, *, company: str) -> dict[str, Any]:
    """Every enforced budget of a company: caps, spend in the period, reservations, breach level; and
    the reserve left for team top-ups this period."""
    comp = await get_company(conn, company)
    rows = [_public(r) for r in await driver.rows(conn, SHOW_SQL, {"company_id": comp["id"]})]
    head = rows[0]
    topped = await driver.one(
        conn, TOPUPS_SQL, {"company_id": comp["id"], "period_start": head["periodStart"]}
    )
    assert topped is not None
    reserve = (head["capUsd"] * RESERVE_SHARE).quantize(CENT_FRACTIONS)
    return {
        "company": comp["slug"],
        "fiscalPeriod": comp["fiscal_period"],
        "timeZone": comp["time_zone"],
        "reserve": {"usd": reserve, "toppedUpUsd": topped["usd"], "remainingUsd": reserve - topped["usd"]},
        "budgets": rows,
    }


def _amount(usd: Decimal | None) -> Decimal | None:
    if usd is None:
        return None
    if not usd.is_finite() or usd < 0:
        raise InvalidInput(f"a budget is an amount in USD ≥ 0, not {usd}", field="usd")
    return usd


async def set_budget(
    conn: AsyncConnection,
    *,
    company: str,
    usd: Decimal | None,
    team: str | None = None,
    agent: str | None = None,
    task: str | None = None,
    workflow: UUID | None = None,
    task_default: bool = False,
    fiscal_period: str | None = None,
    change_cap: bool = True,
    actor: str = audit.LOCAL_USER,
) -> dict[str, Any]:
    """Set one scope's cap (``usd`` None: back to the default). The company when no team, agent or
    task is named; ``task_default`` with an agent sets the budget of each task that agent runs.
    ``change_cap`` False with ``fiscal_period``: only the company's period changes."""
    comp = await get_company(conn, company)
    amount = _amount(usd)
    if len([x for x in (team, agent, task, workflow) if x]) > 1:
        raise InvalidInput("name at most one of --team, --agent, --task, --workflow", field="scope")
    if task_default and not agent:
        raise InvalidInput("--task-default sets an agent's per-task budget: give --agent", field="agent")
    if fiscal_period is not None and fiscal_period not in FISCAL_PERIODS:
        raise InvalidInput(f"fiscal period is one of {', '.join(FISCAL_PERIODS)}", field="period")
    if fiscal_period is not None and (team or agent or task or workflow):
        raise InvalidInput("--period belongs to the company's budget", field="period")
    if team:
        row = await get_team(conn, comp["id"], team)
        scope, scope_id, name = "team", row["id"], row["name"]
        await conn.execute(update(teams).where(teams.c.id == scope_id).values(budget_usd=amount))
    elif agent:
        row = await get_agent(conn, comp["id"], agent)
        scope, scope_id, name = ("agent_task" if task_default else "agent"), row["id"], row["name"]
        column = "task_budget_usd" if task_default else "budget_usd"
        await conn.execute(update(agents).where(agents.c.id == scope_id).values({column: amount}))
    elif workflow:
        scope, scope_id, name = "workflow", workflow, str(workflow)
        await driver.one(
            conn,
            SET_WORKFLOW_SQL if amount is not None else UNSET_WORKFLOW_SQL,
            {"workflow_id": workflow, "company_id": comp["id"], "usd": amount},
        )
    elif task:
        row = await get_task(conn, task)
        if row["company_id"] != comp["id"]:
            raise InvalidInput(f"task {task} is not a task of {comp['slug']}", field="task")
        scope, scope_id, name = "task", row["id"], row["title"]
        await conn.execute(update(tasks).where(tasks.c.id == scope_id).values(budget_usd=amount))
    else:
        scope, scope_id, name = "company", comp["id"], comp["slug"]
        values: dict[str, Any] = {"budget_usd": amount} if change_cap else {}
        if fiscal_period is not None:
            values["fiscal_period"] = fiscal_period
        if values:
            await conn.execute(update(companies).where(companies.c.id == scope_id).values(**values))
    await audit.record(
        conn,
        actor=actor,
        action="budget.set",
        subject_type=scope.removesuffix("_task"),
        subject_id=scope_id,
        company_id=comp["id"],
        payload={
            "scope": scope,
            "name": name,
            "usd": str(amount) if amount is not None else None,
            "fiscalPeriod": fiscal_period,
        },
    )
    return {"scope": scope, "scopeId": scope_id, "name": name, "usd": amount, "fiscalPeriod": fiscal_period}


async def topup(
    conn: AsyncConnection,
    *,
    company: str,
    team: str,
    usd: Decimal,
    reason: str = "",
    actor: str = audit.LOCAL_USER,
) -> dict[str, Any]:
    """Move ``usd`` of the company's reserve (20% of its cap, per period) into a team's cap for this
    period. Refused beyond what is left of the reserve."""
    comp = await get_company(conn, company)
    team_row = await get_team(conn, comp["id"], team)
    if not usd.is_finite() or usd <= 0:
        raise InvalidInput(f"a top-up is a positive amount in USD, not {usd}", field="usd")
    await driver.one(conn, COMPANY_LOCK_SQL, {"company_id": comp["id"]})
    state = await show(conn, company=comp["slug"])
    left: Decimal = state["reserve"]["remainingUsd"]
    if usd > left:
        raise Conflict(
            f"the reserve of {comp['slug']} has {left} USD left this period, not {usd}",
            company=comp["slug"],
            reserveUsd=str(left),
        )
    row = await driver.one(
        conn,
        TOPUP_SQL,
        {"company_id": comp["id"], "team_id": team_row["id"], "usd": usd, "reason": reason, "actor": actor},
    )
    assert row is not None
    await audit.record(
        conn,
        actor=actor,
        action="budget.topup",
        subject_type="team",
        subject_id=team_row["id"],
        company_id=comp["id"],
        payload={
            "team": team_row["name"],
            "usd": str(usd),
            "reason": reason,
            "reserveLeftUsd": str(left - usd),
        },
    )
    team_budget = next(
        b for b in (await show(conn, company=comp["slug"]))["budgets"] if b["scopeId"] == team_row["id"]
    )
    return {
        "team": team_row["name"],
        "usd": usd,
        "reserveLeftUsd": left - usd,
        "teamCapUsd": team_budget["capUsd"],
    }
