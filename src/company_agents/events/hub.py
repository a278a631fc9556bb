"""One LISTEN connection per process, waking the streams that wait on a company's feed.

NOTIFY only wakes: the streams read the database (``feed``), so a lost notification costs latency,
never an event. The listener starts with the first subscriber, stops when the last one leaves, and on
every (re)connect wakes everyone, since notifications sent while it was away are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from uuid import UUID

from company_agents.db.database import Database, libpq_url
from company_agents.events.feed import FEED_CHANNEL

log = logging.getLogger(__name__)


class FeedHub:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._subscribers: dict[UUID, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()  # set while LISTEN is in place (tests wait on it)

    @property
    def subscribers(self) -> int:
        return sum(len(group) for group in self._subscribers.values())

    @contextlib.contextmanager
    def subscribe(self, company_id: UUID) -> Iterator[asyncio.Event]:
        """An event set whenever ``company_id``'s feed may have grown (clear it before each read)."""
        wake = asyncio.Event()
        self._subscribers.setdefault(company_id, set()).add(wake)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen(), name="event-feed-listener")
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

    async def _listen(self) -> None:
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
                    await conn.execute(f"LISTEN {FEED_CHANNEL}")
                    delay = 0.5
                    self.listening.set()
                    self._wake(None)
                    while self._subscribers:
                        # The timeout lets the listener notice that its last subscriber left.
                        async for note in conn.notifies(timeout=5):
                            try:
                                self._wake(UUID(note.payload))
                            except ValueError:
                                continue
            except (psycopg.Error, OSError) as exc:
                log.warning(
                    "event feed listener lost its connection (%s); streams poll meanwhile",
                    exc,
                    extra={"action": "feed_listener_reconnect"},
                )
            finally:
                self.listening.clear()
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
