"""The lease reaper loop: safe on every orchestrator at once, because each step is a compare-and-set."""

from __future__ import annotations

import asyncio
import logging

from company_agents import leases
from company_agents.db.database import Database
from company_agents.runtime.loop import run_loop

log = logging.getLogger(__name__)

BATCH = 100


async def reap_once(db: Database, *, batch: int = BATCH) -> list[dict[str, object]]:
    async with db.engine.begin() as conn:
        reaped = await leases.reap_expired(conn, batch=batch)
    for row in reaped:
        log.warning(
            "lease expired: task %s %s (attempt %s)",
            row["task_id"],
            row["status"],
            row["attempt"],
            extra={"action": "lease_expired", "task_id": str(row["task_id"])},
        )
    return reaped


async def run_reaper(db: Database, *, interval: float, stop: asyncio.Event) -> None:
    """Reap every ``interval`` seconds until ``stop``."""

    async def step() -> None:
        while len(await reap_once(db)) == BATCH:
            pass  # a full batch: there may be more right away

    await run_loop("reaper", step, interval=interval, stop=stop)
