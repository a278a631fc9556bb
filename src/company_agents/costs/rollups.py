"""Roll-ups: what a company, team, agent, task or run spent over a window, from the daily counters.

Whole days come from ``cost_counters`` (one primary-key row per scope and day), whatever the size of the
ledger; today's counter row is whole too when the window ends now. Only the sub-day edges of a window
(``1h``, ``24h``, an ISO time) read the ledger, through its ``(company_id, created_at)`` index, and only
over the edge itself. Days are calendar days in the company's time zone (``companies.time_zone``).

The object follows the product's roll-up (docs/design.md §6): ``scope``, ``scopeId``, ``period``,
``total``, ``budget``, ``breakdown``, ``byTeam``, ``byAgent``, ``trend.perDay`` and ``forecast`` (the
run rate to the end of the period, with a low/high band one standard deviation of the daily spend wide).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, LiteralString
from uuid import UUID
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents.costs.totals import COUNTER_FIELDS, LEDGER_SUMS, Totals
from company_agents.costs.windows import Window, day_start, local_day
from company_agents.db import driver
from company_agents.pricing.book import usd_text

SCOPE_COLUMNS: dict[str, LiteralString] = {
    "company": "company_id",
    "team": "team_id",
    "agent": "agent_id",
    "task": "task_id",
    "run": "run_id",
}

COUNTERS_SQL: LiteralString = f"""
SELECT scope_id, day, {COUNTER_FIELDS} FROM cost_counters
WHERE scope = %(scope)s AND scope_id = ANY(%(ids)s) AND day = ANY(%(days)s)
"""

# byTeam/byAgent need one figure per id, so the counters are summed in the database (20 rows, not 600).
BY_ID_SQL: LiteralString = """
SELECT scope_id, sum(usd) AS usd, sum(entries) AS entries FROM cost_counters
WHERE scope = %(scope)s AND scope_id = ANY(%(ids)s) AND day = ANY(%(days)s)
GROUP BY scope_id
"""


def _edge_sql(column: LiteralString) -> LiteralString:
    # One scan of the edge answers the scope by day, and its teams and agents (for byTeam/byAgent).
    return f"""
SELECT GROUPING(e.team_id) AS by_team_off, GROUPING(e.agent_id) AS by_agent_off, e.team_id, e.agent_id,
       (e.created_at AT TIME ZONE %(tz)s)::date AS day, {LEDGER_SUMS}
FROM cost_entries e
WHERE e.company_id = %(company_id)s AND e.created_at >= %(start)s AND e.created_at < %(end)s
  AND e.{column} = %(scope_id)s
GROUP BY GROUPING SETS (((e.created_at AT TIME ZONE %(tz)s)::date), (e.team_id), (e.agent_id))
"""


EDGE_SQL: dict[str, LiteralString] = {scope: _edge_sql(column) for scope, column in SCOPE_COLUMNS.items()}

NOW_SQL: LiteralString = "SELECT now() AS now"
TEAMS_SQL: LiteralString = "SELECT id, name FROM teams WHERE company_id = %(company_id)s"
AGENTS_SQL: LiteralString = """
SELECT id, name, team_id FROM agents
WHERE company_id = %(company_id)s AND (%(team_id)s::uuid IS NULL OR team_id = %(team_id)s::uuid)
"""


@dataclass(frozen=True)
class Target:
    scope: str
    scope_id: UUID
    company_id: UUID
    time_zone: str
    name: str | None = None
    fiscal_period: str = "monthly"  # companies.fiscal_period
    budget_usd: Decimal | None = None  # the scope's cap for the period, when one applies


@dataclass
class Plan:
    """Which days the counters answer whole, and which sub-day spans the ledger adds (sign +1) or takes
    away from a whole day (sign -1: the shorter side of a partial day is the one read)."""

    days: list[date]
    whole_days: list[date] = field(default_factory=list)
    edges: list[tuple[datetime, datetime, int]] = field(default_factory=list)


def plan(win: Window, tz: ZoneInfo, now: datetime) -> Plan:
    first = local_day(win.start, tz)
    last = local_day(win.end - timedelta(microseconds=1), tz) if win.end > win.start else first
    today = local_day(now, tz)
    out = Plan(days=[first + timedelta(days=n) for n in range((last - first).days + 1)])
    for day in out.days:
        ds, de = day_start(day, tz), day_start(day + timedelta(days=1), tz)
        lo, hi = max(win.start, ds), min(win.end, de)
        if hi <= lo:
            continue
        if lo == ds and (hi == de or (day == today and win.end >= now)):
            out.whole_days.append(day)
            continue
        # The day's counter row covers [ds, min(de, now)); the complement of the window within it:
        outside = (lo - ds) + (max(min(de, now) - hi, timedelta(0)))
        if outside < hi - lo:
            out.whole_days.append(day)
            out.edges += [(a, b, -1) for a, b in ((ds, lo), (hi, de)) if b > a]
        else:
            out.edges.append((lo, hi, 1))
    return out


async def db_now(conn: AsyncConnection) -> datetime:
    row = await driver.one(conn, NOW_SQL, {})
    assert row is not None
    now: datetime = row["now"]
    return now


@dataclass
class Spent:
    usd: Decimal = Decimal(0)
    entries: int = 0

    def add(self, row: dict[str, Any], sign: int = 1) -> None:
        self.usd += sign * row["usd"]
        self.entries += sign * row["entries"]


@dataclass
class EdgeRows:
    """The ledger's answer for a plan's edges: the target by day, its teams and its agents."""

    by_day: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    by_team: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    by_agent: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


async def edge_rows(conn: AsyncConnection, target: Target, the_plan: Plan) -> EdgeRows:
    out = EdgeRows()
    for start, end, sign in the_plan.edges:
        params = {
            "tz": target.time_zone,
            "company_id": target.company_id,
            "start": start,
            "end": end,
            "scope_id": target.scope_id,
        }
        for row in await driver.rows(conn, EDGE_SQL[target.scope], params):
            if not row["by_team_off"]:
                out.by_team.append((sign, row))
            elif not row["by_agent_off"]:
                out.by_agent.append((sign, row))
            else:
                out.by_day.append((sign, row))
    return out


async def sums(conn: AsyncConnection, target: Target, the_plan: Plan, edges: EdgeRows) -> dict[date, Totals]:
    """The target's totals per day: counters for whole days, plus or minus the ledger's edges."""
    out: dict[date, Totals] = defaultdict(Totals)
    if the_plan.whole_days:
        params = {"scope": target.scope, "ids": [target.scope_id], "days": the_plan.whole_days}
        for row in await driver.rows(conn, COUNTERS_SQL, params):
            out[row["day"]].add(row)
    for sign, row in edges.by_day:
        out[row["day"]].add(row, sign)
    return out


async def by_id(
    conn: AsyncConnection,
    the_plan: Plan,
    scope: str,
    ids: list[UUID],
    edges: list[tuple[int, dict[str, Any]]],
) -> dict[UUID, Spent]:
    """Effective USD and entries per id of ``scope`` (teams or agents) over the plan."""
    out: dict[UUID, Spent] = defaultdict(Spent)
    if not ids:
        return out
    if the_plan.whole_days:
        params = {"scope": scope, "ids": ids, "days": the_plan.whole_days}
        for row in await driver.rows(conn, BY_ID_SQL, params):
            out[row["scope_id"]].add(row)
    column = "team_id" if scope == "team" else "agent_id"
    for sign, row in edges:
        if row[column] is not None:
            out[row[column]].add(row, sign)
    return out


def _usd(value: Decimal) -> str:
    return usd_text(value)


def _forecast(total: Decimal, per_day: list[Decimal], win: Window, now: datetime) -> dict[str, Any] | None:
    if win.period_end is None or win.period_end <= now:
        return None
    elapsed = Decimal((now - win.start).total_seconds()) / 86400
    remaining = Decimal((win.period_end - now).total_seconds()) / 86400
    rate = total / elapsed if elapsed > 0 else Decimal(0)
    done = per_day[:-1]  # today is not over: its spend so far is not a day's spend
    if len(done) >= 2:
        mean = sum(done, Decimal(0)) / len(done)
        spread = (sum(((d - mean) ** 2 for d in done), Decimal(0)) / len(done)).sqrt()
    else:
        spread = Decimal(0)
    return {
        "usd": _usd(total + rate * remaining),
        "low": _usd(total + remaining * max(Decimal(0), rate - spread)),
        "high": _usd(total + remaining * (rate + spread)),
        "runRatePerDay": _usd(rate),
        "until": win.period_end,
    }


def _budget(spent: Decimal, cap: Decimal | None) -> dict[str, Any] | None:
    if cap is None:
        return None
    percent = (spent / cap * 100).quantize(Decimal("0.01")) if cap > 0 else None
    return {"usd": _usd(cap), "remaining": _usd(cap - spent), "percentUsed": str(percent)}


async def rollup(
    conn: AsyncConnection,
    target: Target,
    win: Window,
    *,
    now: datetime,
) -> dict[str, Any]:
    """The roll-up object of ``target`` over ``win`` (see the module docstring)."""
    tz = ZoneInfo(target.time_zone)
    the_plan = plan(win, tz, now)
    edges = await edge_rows(conn, target, the_plan)
    per_day = await sums(conn, target, the_plan, edges)
    total = Totals()
    for totals in per_day.values():
        total += totals
    trend = [per_day[d].usd if d in per_day else Decimal(0) for d in the_plan.days]

    by_team: list[dict[str, Any]] = []
    by_agent: list[dict[str, Any]] = []
    if target.scope == "company":
        teams = await driver.rows(conn, TEAMS_SQL, {"company_id": target.company_id})
        spent = await by_id(conn, the_plan, "team", [t["id"] for t in teams], edges.by_team)
        by_team = [
            {
                "teamId": t["id"],
                "name": t["name"],
                "usd": _usd(spent[t["id"]].usd),
                "entries": spent[t["id"]].entries,
            }
            for t in teams
            if t["id"] in spent
        ]
    if target.scope in ("company", "team"):
        team_id = target.scope_id if target.scope == "team" else None
        agents = await driver.rows(conn, AGENTS_SQL, {"company_id": target.company_id, "team_id": team_id})
        spent = await by_id(conn, the_plan, "agent", [a["id"] for a in agents], edges.by_agent)
        by_agent = [
            {
                "agentId": a["id"],
                "name": a["name"],
                "teamId": a["team_id"],
                "usd": _usd(spent[a["id"]].usd),
                "entries": spent[a["id"]].entries,
            }
            for a in agents
            if a["id"] in spent
        ]
    by_team.sort(key=lambda r: (-Decimal(r["usd"]), r["name"]))
    by_agent.sort(key=lambda r: (-Decimal(r["usd"]), r["name"]))
    return {
        "scope": target.scope,
        "scopeId": target.scope_id,
        "name": target.name,
        "period": {"start": win.start.astimezone(tz), "end": win.end.astimezone(tz), "label": win.label},
        "timeZone": target.time_zone,
        "total": {
            "usd": _usd(total.usd),
            "billedUsd": _usd(total.billed_usd),
            "tokens": total.tokens(),
            "entries": total.entries,
        },
        "budget": _budget(total.usd, target.budget_usd),
        "breakdown": {
            "llm": {"usd": _usd(total.llm_usd), "tokens": total.tokens()},
            "tools": {"usd": _usd(total.tool_usd)},
            "runtimeServices": {"usd": _usd(total.runtime_usd)},
        },
        "byTeam": by_team,
        "byAgent": by_agent,
        "trend": {"perDay": [{"day": d, "usd": _usd(u)} for d, u in zip(the_plan.days, trend, strict=True)]},
        "forecast": _forecast(total.usd, trend, win, now),
        "unpriced": {"entries": total.unpriced_entries},
    }
