"""The audit sealer loop: every second, seal the events that have settled (``audit.seal.seal_tick``),
and move the home's anchor (``audit.anchor``) to the new head once it is committed."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from company_agents.audit.anchor import Anchor, anchored_macs_from, next_anchor, write_anchor
from company_agents.audit.seal import Watermark, seal_tick
from company_agents.db.database import Database
from company_agents.master_key import MasterKey
from company_agents.runtime.loop import run_loop

log = logging.getLogger(__name__)


async def run_sealer(
    db: Database,
    master_key: MasterKey,
    stop: asyncio.Event,
    interval: float = 1.0,
    *,
    anchor: Path | None = None,
) -> None:
    """Seal new audit events every ``interval`` seconds until ``stop`` is set (one task in ``up``).

    Each tick is its own short transaction; after a failure the watermark is taken afresh.
    """
    pending: Watermark | None = None

    async def step() -> None:
        nonlocal pending
        moved: Anchor | None = None
        try:
            async with db.engine.begin() as conn:
                sealed, pending = await seal_tick(
                    conn, master_key, pending, macs_from=anchored_macs_from(anchor)
                )
                if sealed and anchor is not None:
                    moved = await next_anchor(conn, anchor)
        except Exception:
            pending = None
            raise
        if moved is not None and anchor is not None:
            write_anchor(anchor, moved)
        if sealed:
            log.debug("sealed %d audit events", sealed, extra={"action": "audit_sealed", "events": sealed})

    await run_loop("audit_sealer", step, interval=interval, stop=stop)
