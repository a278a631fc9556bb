"""Reading a company's event feed after a cursor, exactly once and in order.

Identity ids are allocated before commit, so ``id > last`` alone skips an event whose transaction
commits after a later id was read. Each event carries its transaction id (``txid``, set by the
``audit_events_feed`` trigger); the feed is ordered by ``(txid, id)`` and a read only returns events
below ``pg_snapshot_xmin(pg_current_snapshot())``, the oldest transaction still running. Every
transaction under that horizon has ended, and every transaction that starts later gets a larger id,
so the events a read returns, and their order, are final: nothing can appear before a cursor later.
The price: a long transaction holds the feed back (not other readers or writers) until it ends.

The cursor is the last event id a client saw (the SSE ``id:``); its ``txid`` is read back from the row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, LiteralString
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents.errors import InvalidInput
from company_agents.events.types import event_type

MAX_PAGE = 1000

HORIZON: LiteralString = "pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())::text::bigint"

PAGE_SQL: LiteralString = f"""
SELECT id, txid, company_id, actor, action, subject_type, subject_id, payload, created_at
FROM audit_events
WHERE company_id = :company AND (txid, id) > (:txid, :id) AND txid < {HORIZON}
ORDER BY txid, id
LIMIT :limit
"""

CURSOR_SQL: LiteralString = "SELECT txid FROM audit_events WHERE id = :id AND company_id = :company"

TAIL_SQL: LiteralString = f"SELECT {HORIZON}"
MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class Position:
    """Where a reader is in the feed: the last event seen (``(0, 0)``: before the first)."""

    txid: int = 0
    id: int = 0


@dataclass(frozen=True)
class Event:
    id: int
    txid: int
    company_id: UUID
    actor: str
    action: str
    subject_type: str
    subject_id: str
    payload: dict[str, Any]
    created_at: datetime

    @property
    def type(self) -> str:
        return event_type(self.action)

    @property
    def position(self) -> Position:
        return Position(self.txid, self.id)

    def public(self) -> dict[str, Any]:
        """The event as clients see it (SSE ``data:`` and the webhook body's ``data``)."""
        return {
            "id": str(self.id),
            "type": self.type,
            "action": self.action,
            "companyId": str(self.company_id),
            "actor": self.actor,
            "subject": {"type": self.subject_type, "id": self.subject_id},
            "payload": self.payload,
            "timestamp": self.created_at.isoformat().replace("+00:00", "Z"),
        }


def parse_cursor(raw: str | None) -> int | None:
    """An event id from a ``Last-Event-ID`` header (None when absent or empty)."""
    if raw is None or not raw.strip():
        return None
    value = raw.strip()
    if not value.isdigit() or len(value) > 18:
        raise InvalidInput("Last-Event-ID must be an event id (digits)")
    return int(value)


async def position_of(conn: AsyncConnection, company_id: UUID, event_id: int) -> Position:
    """The feed position of ``event_id``; ``InvalidInput`` when it is not one of this company's events."""
    txid = (await conn.execute(text(CURSOR_SQL), {"id": event_id, "company": company_id})).scalar()
    if txid is None:
        raise InvalidInput(f"event {event_id} is not in this company's feed")
    return Position(int(txid), event_id)


async def tail(conn: AsyncConnection) -> Position:
    """Where a client with no cursor starts: after every event below the horizon.

    Not "after the newest visible event": an older transaction still running would commit behind
    that and be skipped. Events at or above the horizon (committed or not) are still to come, so a
    new client may also get the few that committed while the oldest running transaction was open.
    """
    horizon = int((await conn.execute(text(TAIL_SQL))).scalar_one())
    return Position(horizon - 1, MAX_ID)


async def read_after(
    conn: AsyncConnection, company_id: UUID, after: Position, *, limit: int = 200
) -> list[Event]:
    """Up to ``limit`` events after ``after``, in feed order; each is returned to each reader once."""
    params = {"company": company_id, "txid": after.txid, "id": after.id, "limit": min(limit, MAX_PAGE)}
    rows = (await conn.execute(text(PAGE_SQL), params)).mappings()
    return [Event(**dict(row)) for row in rows]
