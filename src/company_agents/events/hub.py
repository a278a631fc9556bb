"""One watcher per process, waking the streams that wait on a company's feed.

The watcher polls: while some stream waits, it asks every ``PULSE_SECONDS`` which companies have
events after the newest id it has seen, in one query over the primary key, and wakes those companies'
streams. It only wakes: the streams read the database (``feed``), so a missed wake-up costs latency,
never an event. One is possible: an event whose id was allocated before the pulse but that commits
after it. A later event of the same company, or the stream's own poll (``stream.POLL_SECONDS``),
delivers it.

Why not LISTEN/NOTIFY: PostgreSQL serializes the commits of every transaction that sends a NOTIFY (one
lock on the notification queue, held through the commit's WAL flush). A trigger notifying on each
audit event made every write of every orchestrator wait on the others; migration 0023 removed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import LiteralString
from uuid import UUID

from company_agents.db.database import Database, libpq_url

log = logging.getLogger(__name__)

# Between two looks at the feed while a stream waits: a stream's wake-up latency.
PULSE_SECONDS = 0.2

NEWEST_SQL: LiteralString = "SELECT coalesce(max(id), 0) FROM audit_events"
# Walks the primary key from the last id seen: a pulse reads only the events written since the last.
CHANGED_SQL: LiteralString = """
SELECT company_id, max(id) FROM audit_events WHERE id > %(after)s GROUP BY company_id
"""


class FeedHub:
    def __init__(self, db: Database, *, pulse_seconds: float = PULSE_SECONDS) -> None:
        self.db = db
        self.pulse_seconds = pulse_seconds
        self._subscribers: dict[UUID, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None
        self.watching = asyncio.Event()  # set while the watcher has its connection (tests wait on it)

    @property
    def subscribers(self) -> int:
        return sum(len(group) for group in self._subscribers.values())

    @contextlib.contextmanager
    def subscribe(self, company_id: UUID) -> Iterator[asyncio.Event]:
        """An event set whenever ``company_id``'s feed may have grown (clear it before each read)."""
        wake = asyncio.Event()
        self._subscribers.setdefault(company_id, set()).add(wake)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._watch(), name="event-feed-watcher")
        try:
            yield wake
        finally:
            subs = self._subscribers.get(company_id)
            if subs is not None:
                subs.discard(wake)
                if not subs:
                    del self._subscribers[company_id]

    def _wake(self, company_id: UUID | None) -> None:
        groups = (
            self._subscribers.values() if company_id is None else [self._subscribers.get(company_id, set())]
        )
        for group in groups:
            for wake in group:
                wake.set()

    async def _watch(self) -> None:
        import psycopg

        delay = 0.5
        while self._subscribers:
            try:
                async with await psycopg.AsyncConnection.connect(
                    libpq_url(self.db.url),
                    autocommit=True,
                    application_name=self.db.application_name,
                    **self.db.connect_kwargs,
                ) as conn:
                    after = int((await (await conn.execute(NEWEST_SQL)).fetchone() or (0,))[0])
                    delay = 0.5
                    self.watching.set()
                    # Whatever was written while no one watched: every stream reads once.
                    self._wake(None)
                    while self._subscribers:
                        await asyncio.sleep(self.pulse_seconds)
                        rows = await (await conn.execute(CHANGED_SQL, {"after": after})).fetchall()
                        for company_id, newest in rows:
                            after = max(after, int(newest))
                            if company_id is not None:
                                self._wake(company_id)
            except (psycopg.Error, OSError) as exc:
                log.warning(
                    "event feed watcher lost its connection (%s); streams poll meanwhile",
                    exc,
                    extra={"action": "feed_watcher_reconnect"},
                )
            finally:
                self.watching.clear()
            if self._subscribers:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)

    async def close(self) -> None:
        self._subscribers.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
