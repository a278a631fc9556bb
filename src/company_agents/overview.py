"""The company overview read model: one company at a glance, cheap at any size.

What it reads, and why it stays fast with 100k tasks, 1M audit events and 1M cost entries:
- task counts: one GROUP BY over the ``(company_id, status)`` index (index-only), and today's
  finishes over the partial ``(company_id, finished_at)`` index, so only today's rows are touched;
- tasks in flight: the newest few, from a partial index that holds only unfinished, started tasks;
- money: the daily counters (``cost_counters``, one row per day of the period) and the budget function
  the claim and the cost check enforce (``ca_budget_scopes``), never the ledger;
- agents: their leases (one row per held task) and their last three finished runs;
- activity: the newest events through ``(company_id, created_at)``.
The SQL is static and goes straight to the driver (``db.driver``), in the caller's transaction.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any, LiteralString

from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents.api.schemas.overview import OverviewPublic
from company_agents.budgets.levels import level_of, percent
from company_agents.companies import get_company
from company_agents.costs.rollups import db_now
from company_agents.costs.windows import day_start, fiscal_period, local_day, zone
from company_agents.db import driver
from company_agents.db.schema.tasks import TASK_STATUSES
from company_agents.pricing.book import usd_text
from company_agents.task_states import TERMINAL, sql_list

# Started and not finished: what "in flight" means on the overview (queued ones have not started).
IN_FLIGHT = ("assigned", "running", "review", "handoff", "blocked")
IN_FLIGHT_SQL: LiteralString = sql_list(IN_FLIGHT)
TERMINAL_SQL: LiteralString = sql_list(tuple(sorted(TERMINAL)))
IN_FLIGHT_LIMIT = 25
ACTIVITY_LIMIT = 20
# A company with more agents than this is shown its first ones by name (the agents page lists all).
AGENT_LIMIT = 500
# A run's progress message is free text of up to 10k characters: the overview shows its start.
MESSAGE_CHARS = 300
FAILING_RUNS = 3

STATUS_COUNTS_SQL: LiteralString = """
SELECT status, count(*) AS n FROM tasks WHERE company_id = %(company_id)s GROUP BY status
"""

FINISHED_TODAY_SQL: LiteralString = """
SELECT count(*) FILTER (WHERE status = 'done') AS done, count(*) FILTER (WHERE status = 'failed') AS failed
FROM tasks
WHERE company_id = %(company_id)s AND finished_at IS NOT NULL AND finished_at >= %(since)s
"""

TASKS_IN_FLIGHT_SQL: LiteralString = f"""
SELECT t.id, t.title, t.status, t.priority, t.attempt, t.blocked_reason, t.assigned_agent_id,
       a.name AS assigned_agent_name, t.assigned_team_id, t.created_at, t.updated_at
FROM tasks t LEFT JOIN agents a ON a.id = t.assigned_agent_id
WHERE t.company_id = %(company_id)s AND t.status IN {IN_FLIGHT_SQL}
ORDER BY t.created_at DESC, t.id DESC
LIMIT %(limit)s
"""

# A task counts for the team it is assigned to, else for its agent's team.
TEAM_IN_FLIGHT_SQL: LiteralString = f"""
SELECT coalesce(t.assigned_team_id, a.team_id) AS team_id, count(*) AS n
FROM tasks t LEFT JOIN agents a ON a.id = t.assigned_agent_id
WHERE t.company_id = %(company_id)s AND t.status IN {IN_FLIGHT_SQL}
GROUP BY 1
"""

TEAMS_SQL: LiteralString = "SELECT id, name FROM teams WHERE company_id = %(company_id)s ORDER BY name"

AGENTS_SQL: LiteralString = f"""
SELECT a.id, a.name, a.role, a.status, a.team_id, coalesce(h.recent, ARRAY[]::text[]) AS recent
FROM agents a
LEFT JOIN LATERAL (
    SELECT array_agg(r.status ORDER BY r.started_at DESC) AS recent FROM (
        SELECT r.status, r.started_at FROM runs r
        WHERE r.agent_id = a.id AND r.status <> 'running'
        ORDER BY r.started_at DESC LIMIT {FAILING_RUNS}
    ) r
) h ON true
WHERE a.company_id = %(company_id)s AND a.status <> 'retired'
ORDER BY a.name
LIMIT {AGENT_LIMIT}
"""

RUNNING_SQL: LiteralString = """
SELECT l.agent_id, l.task_id, t.title, t.status, l.run_id, r.started_at,
       cp.payload->>'step' AS step, left(cp.payload->>'message', %(chars)s) AS message,
       CASE WHEN jsonb_typeof(cp.payload->'percent') = 'number' THEN (cp.payload->>'percent')::float8 END
           AS percent,
       cp.created_at AS reported_at
FROM leases l
JOIN tasks t ON t.id = l.task_id
JOIN runs r ON r.id = l.run_id
LEFT JOIN LATERAL (
    SELECT c.payload, c.created_at FROM run_checkpoints c WHERE c.run_id = l.run_id ORDER BY c.id DESC LIMIT 1
) cp ON true
WHERE l.company_id = %(company_id)s
ORDER BY r.started_at, l.task_id
"""

# As ``approvals.inbox`` counts them: a request or question whose task has finished waits for nobody.
INBOX_SQL: LiteralString = f"""
SELECT
  (SELECT count(*) FROM approvals a LEFT JOIN tasks t ON t.id = a.task_id
   WHERE a.company_id = %(company_id)s AND a.status = 'pending'
     AND (t.id IS NULL OR t.status NOT IN {TERMINAL_SQL})) AS approvals,
  (SELECT count(*) FROM approvals a LEFT JOIN tasks t ON t.id = a.task_id
   WHERE a.company_id = %(company_id)s AND a.status = 'asked_question'
     AND (t.id IS NULL OR t.status NOT IN {TERMINAL_SQL})
     AND NOT EXISTS (SELECT 1 FROM approvals b
                     WHERE b.task_id = a.task_id AND b.action = a.action AND b.created_at > a.created_at))
     AS questions
"""

BUDGET_SQL: LiteralString = """
SELECT period_start, today, cap, spent, reserved FROM ca_budget_scopes(%(company_id)s, NULL, NULL)
WHERE scope = 'company'
"""

COUNTERS_SQL: LiteralString = """
SELECT day, usd, unpriced_entries FROM cost_counters
WHERE scope = 'company' AND scope_id = %(company_id)s AND day >= %(period_start)s
"""

ACTIVITY_SQL: LiteralString = """
SELECT id, created_at AS at, actor, action, split_part(action, '.', 1) AS category, subject_type,
       subject_id, payload
FROM audit_events
WHERE company_id = %(company_id)s
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s
"""


def agent_health(status: str, recent: list[str]) -> str:
    """``paused``; ``failing`` when its last three finished runs failed; ``degraded`` when the last did;
    else ``ok``."""
    if status == "paused":
        return "paused"
    if len(recent) >= FAILING_RUNS and all(s == "failed" for s in recent[:FAILING_RUNS]):
        return "failing"
    if recent and recent[0] == "failed":
        return "degraded"
    return "ok"


def _usd(value: Decimal) -> str:
    return usd_text(value)


async def _task_counts(conn: AsyncConnection, company_id: uuid.UUID, today_start: datetime) -> dict[str, Any]:
    by_state = dict.fromkeys(TASK_STATUSES, 0)
    for row in await driver.rows(conn, STATUS_COUNTS_SQL, {"company_id": company_id}):
        by_state[row["status"]] = row["n"]
    today = await driver.one(conn, FINISHED_TODAY_SQL, {"company_id": company_id, "since": today_start})
    assert today is not None
    return {
        "by_state": by_state,
        "total": sum(by_state.values()),
        "in_flight": sum(by_state[s] for s in IN_FLIGHT),
        "done_today": today["done"],
        "failed_today": today["failed"],
    }


async def _cost(conn: AsyncConnection, company: dict[str, Any], now: datetime) -> dict[str, Any]:
    company_id = company["id"]
    budget = await driver.one(conn, BUDGET_SQL, {"company_id": company_id})
    assert budget is not None  # the company exists: the function always answers its row
    counters = await driver.rows(
        conn, COUNTERS_SQL, {"company_id": company_id, "period_start": budget["period_start"]}
    )
    today = sum((r["usd"] for r in counters if r["day"] == budget["today"]), Decimal(0))
    cap, spent, reserved = budget["cap"], budget["spent"], budget["reserved"]
    tz = zone(company["time_zone"])
    win = fiscal_period(now, tz, company["fiscal_period"])
    elapsed = Decimal((now - win.start).total_seconds()) / 86400
    rate = spent / elapsed if elapsed > 0 else Decimal(0)
    forecast = None
    if win.period_end is not None and win.period_end > now:
        remaining_days = Decimal((win.period_end - now).total_seconds()) / 86400
        forecast = _usd(spent + rate * remaining_days)
    pct = percent(cap, spent)
    return {
        "today": _usd(today),
        "this_period": _usd(spent),
        "period_start": win.start,
        "period_end": win.period_end,
        "budget": _usd(cap),
        "reserved": _usd(reserved),
        "remaining": _usd(cap - spent - reserved),
        "percent_used": None if pct is None else str(pct),
        "level": level_of("company", cap, spent),
        "forecast_end_of_period": forecast,
        "run_rate_per_day": _usd(rate),
        "unpriced_entries": max(0, sum(r["unpriced_entries"] for r in counters)),
    }


async def company_overview(
    conn: AsyncConnection,
    company_id: uuid.UUID,
    *,
    in_flight_limit: int = IN_FLIGHT_LIMIT,
    activity_limit: int = ACTIVITY_LIMIT,
) -> OverviewPublic:
    """The overview of one company (``NotFound`` when there is none); see the module docstring."""
    company = await get_company(conn, company_id)
    cid = company["id"]
    params = {"company_id": cid}
    now = await db_now(conn)
    tz = zone(company["time_zone"])
    today_start = day_start(local_day(now, tz), tz)

    tasks = await _task_counts(conn, cid, today_start)
    in_flight = await driver.rows(conn, TASKS_IN_FLIGHT_SQL, {**params, "limit": in_flight_limit})
    team_in_flight = {r["team_id"]: r["n"] for r in await driver.rows(conn, TEAM_IN_FLIGHT_SQL, params)}

    running: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
    for row in await driver.rows(conn, RUNNING_SQL, {**params, "chars": MESSAGE_CHARS}):
        running[row["agent_id"]].append(row)
    agent_rows = await driver.rows(conn, AGENTS_SQL, params)
    agents = [
        {
            **a,
            "health": agent_health(a["status"], list(a["recent"])),
            "running_tasks": running.get(a["id"], []),
        }
        for a in agent_rows
    ]
    by_team: dict[uuid.UUID | None, list[dict[str, Any]]] = defaultdict(list)
    for agent in agents:
        by_team[agent["team_id"]].append(agent)
    teams = [
        {
            "id": t["id"],
            "name": t["name"],
            "agent_count": len(by_team.get(t["id"], [])),
            "tasks_in_flight": team_in_flight.get(t["id"], 0),
            "agents": by_team.get(t["id"], []),
        }
        for t in await driver.rows(conn, TEAMS_SQL, params)
    ]

    inbox = await driver.one(conn, INBOX_SQL, params)
    assert inbox is not None
    handoffs = tasks["by_state"]["handoff"]
    health = {
        "total": len(agents),
        "running": sum(1 for a in agents if a["running_tasks"]),
        "idle": sum(1 for a in agents if a["status"] == "idle" and not a["running_tasks"]),
        "paused": sum(1 for a in agents if a["status"] == "paused"),
        "degraded": sum(1 for a in agents if a["health"] == "degraded"),
        "failing": sum(1 for a in agents if a["health"] == "failing"),
    }
    activity = await driver.rows(conn, ACTIVITY_SQL, {**params, "limit": activity_limit})
    return OverviewPublic.model_validate(
        {
            "company": company,
            "generated_at": now,
            "tasks": tasks,
            "tasks_in_flight": in_flight,
            "teams": teams,
            "agents_without_team": by_team.get(None, []),
            "inbox": {
                "approvals": inbox["approvals"],
                "handoffs": handoffs,
                "questions": inbox["questions"],
                "total": inbox["approvals"] + handoffs + inbox["questions"],
            },
            "cost": await _cost(conn, company, now),
            "health": health,
            "recent_activity": activity,
        }
    )
