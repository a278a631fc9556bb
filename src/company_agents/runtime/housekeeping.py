"""Housekeeping inside ``up``: workspace retention, every ``housekeeping_interval_seconds``."""

from __future__ import annotations

import asyncio
import logging

from company_agents.db.database import Database
from company_agents.runtime.loop import run_loop
from company_agents.settings import Settings

log = logging.getLogger(__name__)


async def run_housekeeping(settings: Settings, db: Database, *, stop: asyncio.Event) -> None:
    from company_agents.workspaces import housekeeping_once

    async def step() -> None:
        async with db.autocommit() as conn:
            removed = await housekeeping_once(settings, conn)
        if removed:
            log.info("removed %d expired workspaces", removed, extra={"action": "workspaces_removed"})

    await run_loop("housekeeping", step, interval=settings.housekeeping_interval_seconds, stop=stop)
