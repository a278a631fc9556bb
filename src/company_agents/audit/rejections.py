"""Audit rows for rejected agent calls, at most one per caller, tool and minute.

A rejected call changes nothing, but it is audited so that the board can see a zombie (an agent whose
lease was taken over) or a confused agent. The audit table is append-only, so an agent that retries in
a loop must not grow it without bound: the 409 (or 403) is answered every time, the row is written
once per window.

The check is in the database, not in a process's memory: it holds across orchestrators and restarts,
and it costs one lookup on ``ix_audit_events_subject`` (the rejected task's own events). A
transaction-scoped advisory lock per key makes check-then-insert exact under concurrent retries.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import audit
from company_agents.db import locks

REJECTION_WINDOW_SECONDS = 60.0
LOCK_NAMESPACE = locks.REJECTION_AUDIT_NAMESPACE

_LOCK = text("SELECT pg_advisory_xact_lock(:namespace, hashtext(:key))")
_RECENT = text(
    """
SELECT EXISTS (
    SELECT 1 FROM audit_events
    WHERE subject_type = :subject_type AND subject_id = :subject_id AND action = :action
      AND actor = :actor AND payload @> CAST(:match AS jsonb)
      AND created_at > now() - make_interval(secs => :window)
)
"""
)


async def record_once_per_window(
    conn: AsyncConnection,
    *,
    match: dict[str, Any],
    actor: str,
    action: str,
    subject_type: str,
    subject_id: UUID | str,
    company_id: UUID | None,
    payload: dict[str, Any],
    window_seconds: float = REJECTION_WINDOW_SECONDS,
) -> bool:
    """Record the event unless one with the same action, subject, actor and ``match`` (a subset of
    the payload, e.g. run and tool) was recorded within the window. True when a row was written."""
    params = {
        "actor": actor,
        "subject_type": subject_type,
        "subject_id": str(subject_id),
        "action": action,
        "match": json.dumps(match, sort_keys=True),
        "window": float(window_seconds),
    }
    key = f"{action}|{subject_type}|{subject_id}|{actor}|{params['match']}"
    await conn.execute(_LOCK, {"namespace": LOCK_NAMESPACE, "key": key})
    if (await conn.execute(_RECENT, params)).scalar_one():
        return False
    await audit.record(
        conn,
        actor=actor,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        company_id=company_id,
        payload=payload,
    )
    return True
