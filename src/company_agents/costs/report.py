"""What ``cost show|entries|export`` read: the scope a command names, its roll-up, raw entries.

Entries come newest first (``entries``) or oldest first in keyset pages (``export``, which streams a
ledger of any size in bounded memory). Amounts stay ``Decimal``; the CLI prints them as strings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal
from typing import Any, LiteralString
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import agents, companies, runs, tasks
from company_agents.costs.rollups import SCOPE_COLUMNS, Target, db_now, rollup
from company_agents.costs.windows import Window, window, zone
from company_agents.db import driver
from company_agents.errors import InvalidInput, NotFound
from company_agents.pagination import Key

ENTRY_COLUMNS: LiteralString = """
    e.id, e.created_at, e.kind, e.model, e.provider, e.billing, e.input_tokens, e.output_tokens,
    e.cache_read_tokens, e.cache_write_5m_tokens, e.cache_write_1h_tokens, e.reasoning_tokens,
    e.billed_usd, e.imputed_usd, e.effective_usd, e.price_source, e.unpriced, e.company_id, e.team_id,
    e.agent_id, e.task_id, e.run_id, e.adjusts_entry_id, e.idempotency_key, e.details
"""


def _entries_sql(column: LiteralString) -> LiteralString:
    return f"""
SELECT {ENTRY_COLUMNS} FROM cost_entries e
WHERE e.company_id = %(company_id)s AND e.{column} = %(scope_id)s
  AND e.created_at >= %(start)s AND e.created_at < %(end)s
  AND (%(kind)s::text IS NULL OR e.kind = %(kind)s::text)
  AND (NOT %(unpriced)s OR e.unpriced)
  AND (%(after_at)s::timestamptz IS NULL
       OR (e.created_at, e.id) {{cmp}} (%(after_at)s::timestamptz, %(after_id)s::uuid))
ORDER BY e.created_at {{order}}, e.id {{order}}
LIMIT %(limit)s
"""


ENTRIES_ASC: dict[str, LiteralString] = {
    scope: _entries_sql(column).replace("{order}", "ASC").replace("{cmp}", ">")
    for scope, column in SCOPE_COLUMNS.items()
}
ENTRIES_DESC: dict[str, LiteralString] = {
    scope: _entries_sql(column).replace("{order}", "DESC").replace("{cmp}", "<")
    for scope, column in SCOPE_COLUMNS.items()
}

UNPRICED_MODELS_SQL: LiteralString = """
SELECT coalesce(e.model, '(none)') AS model, count(*) AS entries, max(e.created_at) AS last_seen
FROM cost_entries e
WHERE e.company_id = %(company_id)s AND e.unpriced
  AND NOT EXISTS (SELECT 1 FROM cost_entries a WHERE a.adjusts_entry_id = e.id)
GROUP BY 1 ORDER BY 2 DESC
"""


async def resolve_target(
    conn: AsyncConnection,
    company: str,
    *,
    team: str | None = None,
    agent: str | None = None,
    task: str | None = None,
    run: str | None = None,
) -> Target:
    """The one scope the options name (the company when none does)."""
    named = [n for n, v in (("team", team), ("agent", agent), ("task", task), ("run", run)) if v is not None]
    if len(named) > 1:
        raise InvalidInput(f"name one scope, not {' and '.join(named)}", field="scope")
    comp = await companies.get_company(conn, company)
    cid, tz, fiscal = comp["id"], comp["time_zone"], comp["fiscal_period"]
    # SEAM(budgets): the caps (with their defaults: $500 a company, shares of 80% a team, $80 an agent)
    # come from the budgets module; until then a scope's own budget_usd column, when set, is shown.
    if team is not None:
        row = await agents.get_team(conn, cid, team)
        return Target("team", row["id"], cid, tz, row["name"], fiscal, row.get("budget_usd"))
    if agent is not None:
        row = await agents.get_agent(conn, cid, agent)
        return Target("agent", row["id"], cid, tz, row["name"], fiscal, row.get("budget_usd"))
    if task is not None:
        row = await tasks.get_task(conn, task)
        if row["company_id"] != cid:
            raise NotFound(f"no task {task} in company {comp['slug']}", task=task)
        return Target("task", row["id"], cid, tz, row["title"], fiscal, row.get("budget_usd"))
    if run is not None:
        row = await runs.get_run(conn, run)
        if row["company_id"] != cid:
            raise NotFound(f"no run {run} in company {comp['slug']}", run=run)
        return Target("run", row["id"], cid, tz, None, fiscal)
    return Target("company", cid, cid, tz, comp["name"], fiscal, comp["budget_usd"])


async def target_window(
    conn: AsyncConnection, target: Target, since: str | None, until: str | None
) -> tuple[Window, datetime]:
    now = await db_now(conn)
    return window(since, until, now=now, tz=zone(target.time_zone), fiscal=target.fiscal_period), now


async def show(
    conn: AsyncConnection, target: Target, *, since: str | None = None, until: str | None = None
) -> dict[str, Any]:
    """The roll-up of ``target``, and which models left entries unpriced (company-wide)."""
    win, now = await target_window(conn, target, since, until)
    out = await rollup(conn, target, win, now=now)
    if out["unpriced"]["entries"]:
        out["unpriced"]["models"] = await unpriced_models(conn, target.company_id)
    return out


async def unpriced_models(conn: AsyncConnection, company_id: UUID) -> list[dict[str, Any]]:
    """Models the price book and the overrides do not know, with their still-unpriced entries."""
    rows = await driver.rows(conn, UNPRICED_MODELS_SQL, {"company_id": company_id})
    return [{"model": r["model"], "entries": r["entries"], "lastSeen": r["last_seen"]} for r in rows]


def _params(target: Target, win: Window, *, kind: str | None, unpriced: bool, limit: int) -> dict[str, Any]:
    return {
        "company_id": target.company_id,
        "scope_id": target.scope_id,
        "start": win.start,
        "end": win.end,
        "kind": kind,
        "unpriced": unpriced,
        "after_at": None,
        "after_id": None,
        "limit": limit,
    }


async def list_entries(
    conn: AsyncConnection,
    target: Target,
    win: Window,
    *,
    kind: str | None = None,
    unpriced: bool = False,
    limit: int = 100,
    before: Key | None = None,
) -> list[dict[str, Any]]:
    """The newest ``limit`` entries of ``target`` in ``win`` (older than the ``(created_at, id)`` key
    ``before``: a keyset page, ``pagination``)."""
    if not 1 <= limit <= 10_000:
        raise InvalidInput("limit must be between 1 and 10000", field="limit")
    params = _params(target, win, kind=kind, unpriced=unpriced, limit=limit)
    if before is not None:
        params["after_at"], params["after_id"] = before
    return await driver.rows(conn, ENTRIES_DESC[target.scope], params)


async def iter_entries(
    conn: AsyncConnection, target: Target, win: Window, *, page: int = 5000
) -> AsyncIterator[dict[str, Any]]:
    """Every entry of ``target`` in ``win``, oldest first, ``page`` rows per query."""
    params = _params(target, win, kind=None, unpriced=False, limit=page)
    while True:
        rows = await driver.rows(conn, ENTRIES_ASC[target.scope], params)
        for row in rows:
            yield row
        if len(rows) < page:
            return
        params["after_at"], params["after_id"] = rows[-1]["created_at"], rows[-1]["id"]


def entry_public(row: dict[str, Any]) -> dict[str, Any]:
    """An entry as JSON shows it: amounts as strings (``None`` stays null when unpriced)."""
    out = dict(row)
    for key in ("billed_usd", "imputed_usd", "effective_usd"):
        value = out[key]
        out[key] = None if value is None else str(Decimal(value))
    return out
