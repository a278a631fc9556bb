"""Housekeeping inside ``up``, every ``housekeeping_interval_seconds``: workspace retention, the agent
CLIs' saved state of ended tasks (``adapters.clis.state``), and the approval expiry sweep (an approval
nobody answered in time is expired, which counts as denied)."""

from __future__ import annotations

import asyncio
import logging

from company_agents.db.database import Database
from company_agents.runtime.loop import run_loop
from company_agents.settings import Settings

log = logging.getLogger(__name__)


async def run_housekeeping(settings: Settings, db: Database, *, stop: asyncio.Event) -> None:
    from company_agents.adapters.clis import state as cli_state
    from company_agents.workspaces import housekeeping_once

    async def step() -> None:
        async with db.autocommit() as conn:
            removed = await housekeeping_once(settings, conn)
            states = await cli_state.sweep(settings, conn)
        if removed:
            log.info("removed %d expired workspaces", removed, extra={"action": "workspaces_removed"})
        if states:
            log.info(
                "removed the CLI state of %d ended tasks", states, extra={"action": "cli_states_removed"}
            )
        await expire_approvals(db)

    await run_loop("housekeeping", step, interval=settings.housekeeping_interval_seconds, stop=stop)


async def expire_approvals(db: Database) -> int:
    """Expire due approvals in batches, each batch its own transaction; returns how many."""
    from company_agents.approvals.store import expire_due

    total = 0
    while True:
        async with db.engine.begin() as conn:
            batch = await expire_due(conn, batch=100)
        total += len(batch)
        if len(batch) < 100:
            break
    if total:
        log.info("expired %d approvals", total, extra={"action": "approvals_expired"})
    return total
