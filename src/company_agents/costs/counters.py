"""Reads of the daily spend counters: what a scope spent over a span of days.

A day is a calendar day in the company's time zone (``companies.time_zone``); periods and windows are
turned into day spans by the caller. Reading a month is a sum over at most 31 primary-key rows.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import LiteralString
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents.db import driver

SPENT_SQL: LiteralString = """
SELECT coalesce(sum(usd), 0) AS usd FROM cost_counters
WHERE scope = %(scope)s AND scope_id = %(scope_id)s AND day >= %(first)s AND day <= %(last)s
"""

TODAY_SQL: LiteralString = """
SELECT (now() AT TIME ZONE time_zone)::date AS today FROM companies WHERE id = %(company_id)s
"""


async def spent(conn: AsyncConnection, *, scope: str, scope_id: UUID, first: date, last: date) -> Decimal:
    """Effective USD of ``scope``/``scope_id`` on the days ``first`` … ``last`` (both included)."""
    row = await driver.one(
        conn, SPENT_SQL, {"scope": scope, "scope_id": scope_id, "first": first, "last": last}
    )
    assert row is not None
    usd: Decimal = row["usd"]
    return usd


async def company_today(conn: AsyncConnection, company_id: UUID) -> date:
    """Today in the company's time zone, by the database's clock (the one the ledger writes with)."""
    row = await driver.one(conn, TODAY_SQL, {"company_id": company_id})
    if row is None:
        raise LookupError(f"no company {company_id}")
    today: date = row["today"]
    return today
