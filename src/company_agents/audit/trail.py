"""Writing audit events. Every state change records one, in the same transaction as the change."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents.db.schema import audit_events

SYSTEM_ACTOR = "system:orchestrator"
LOCAL_USER = "user:local"


async def record(
    conn: AsyncConnection,
    *,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: UUID | str,
    company_id: UUID | None = None,
    payload: dict[str, Any] | None = None,
) -> int:
    """Append one audit event on ``conn`` (the caller's transaction) and return its id.

    ``actor`` is ``user:…``, ``agent:…`` or ``system:…``; ``action`` is dotted (``task.created``).
    Payloads must never carry secret values.
    """
    result = await conn.execute(
        insert(audit_events)
        .values(
            company_id=company_id,
            actor=actor,
            action=action,
            subject_type=subject_type,
            subject_id=str(subject_id),
            payload=payload or {},
        )
        .returning(audit_events.c.id)
    )
    return int(result.scalar_one())
