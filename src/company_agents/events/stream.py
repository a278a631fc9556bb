"""A company's live event sequence: replay after a cursor, then follow, woken by the hub.

Memory per client is bounded by one page: the generator reads the next page only when the client has
taken the previous one, so a slow client is simply further behind in the database (and one whose
socket takes nothing is dropped by the SSE layer's send timeout). Polling backs the wake-ups up: the
feed's horizon also moves when an unrelated long transaction ends, which notifies nobody.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from uuid import UUID

from company_agents.db.database import Database
from company_agents.events.feed import Event, Position, read_after
from company_agents.events.hub import FeedHub

PAGE = 200
# Between reads when nothing wakes the stream, and the first re-read after a wake-up that found the
# new events still behind the horizon (doubling up to POLL_SECONDS).
POLL_SECONDS = 2.0
RECHECK_SECONDS = 0.05


async def follow(
    db: Database, hub: FeedHub, company_id: UUID, start: Position, *, page: int = PAGE
) -> AsyncGenerator[Event, None]:
    """Every event after ``start``, in feed order, forever (the consumer stops by closing it)."""
    import asyncio

    pos = start
    with hub.subscribe(company_id) as wake:
        recheck, woke = RECHECK_SECONDS, False
        while True:
            wake.clear()
            async with db.engine.connect() as conn:
                batch = await read_after(conn, company_id, pos, limit=page)
                await conn.rollback()
            for event in batch:
                yield event
                pos = event.position
            if len(batch) == page:
                continue
            if batch or not woke:
                recheck, timeout = RECHECK_SECONDS, POLL_SECONDS
            else:
                # Woken, yet nothing to read: the new events may sit behind the horizon; look again soon.
                timeout, recheck = recheck, min(recheck * 2, POLL_SECONDS)
            try:
                await asyncio.wait_for(wake.wait(), timeout=timeout)
                woke = True
            except TimeoutError:
                woke = False
