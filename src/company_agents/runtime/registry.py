"""The orchestrators registry: every `up` registers itself, beats a heartbeat, and removes itself on a
clean stop (docs/deployment.md).

Times are the database clock's. A row is *gone* when its heartbeat is older than three of its own
intervals (a crash, a kill -9, a host cut off from the database); a gone row is pruned a day later by
whichever orchestrator is running. Only the host that ran an orchestrator ever cleans up after it (its
agents, its leases: ``orphans.sweep_orphans``); here a starting orchestrator only drops the registry rows
of dead processes of its own host, since no other host can tell whether a pid is alive.

The heartbeat also re-reads the database's master key (``database_key``). When another host rotated it,
this orchestrator *refuses*: it logs one line naming both keys and the fix, stops cleanly (its agents
are shut down, its leases released for the others) and ``up`` exits non-zero. It does not reload: the
key is held by the scheduler, the sealer, the tool endpoint and every open session's MAC, and the new
key must be copied to this host anyway, so a restart with it is the one step that is whole.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass, field
from typing import Any, LiteralString
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import __version__
from company_agents.db.database import Database
from company_agents.db.retry import retry_transient
from company_agents.errors import MasterKeyMismatch
from company_agents.master_key import MasterKey
from company_agents.runtime.loop import run_loop

log = logging.getLogger(__name__)

# A row is gone after this many missed heartbeats, and pruned this long after its last one.
GONE_AFTER_BEATS = 3
PRUNE_AFTER: LiteralString = "1 day"

REGISTER_SQL: LiteralString = """
INSERT INTO orchestrators (host, pid, holder, version, schema_revision, isolation, key_id, api_url,
                           heartbeat_seconds)
VALUES (:host, :pid, :holder, :version, :schema_revision, :isolation, :key_id, :api_url, :interval)
RETURNING id
"""
# The row may be missing (pruned while this process was cut off, or deleted by hand): put it back.
HEARTBEAT_SQL: LiteralString = """
UPDATE orchestrators SET last_heartbeat = now() WHERE id = :id RETURNING id
"""
REINSERT_SQL: LiteralString = """
INSERT INTO orchestrators (id, host, pid, holder, version, schema_revision, isolation, key_id, api_url,
                           heartbeat_seconds)
VALUES (:id, :host, :pid, :holder, :version, :schema_revision, :isolation, :key_id, :api_url, :interval)
ON CONFLICT (id) DO UPDATE SET last_heartbeat = now()
"""
DEREGISTER_SQL: LiteralString = "DELETE FROM orchestrators WHERE id = :id"
PRUNE_SQL: LiteralString = f"""
DELETE FROM orchestrators WHERE last_heartbeat < now() - interval '{PRUNE_AFTER}'
"""
SAME_HOST_SQL: LiteralString = "SELECT id, pid FROM orchestrators WHERE host = :host AND id <> :id"
LIST_SQL: LiteralString = f"""
SELECT id, host, pid, holder, version, schema_revision, isolation, key_id, api_url, heartbeat_seconds,
       started_at, last_heartbeat,
       last_heartbeat >= now() - make_interval(secs => heartbeat_seconds * {GONE_AFTER_BEATS}) AS alive,
       extract(epoch FROM now() - last_heartbeat)::float8 AS heartbeat_age_seconds
FROM orchestrators ORDER BY started_at, host, pid
"""
DATABASE_KEY_SQL: LiteralString = "SELECT key_id FROM database_key WHERE id = 1"


@dataclass
class Registration:
    """This process's row, and why it refused to go on (set by the heartbeat; ``serve`` raises it)."""

    id: UUID
    values: dict[str, Any]
    refused: MasterKeyMismatch | None = field(default=None)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def register(
    db: Database,
    *,
    holder: str,
    schema_revision: str,
    isolation: str,
    master_key: MasterKey,
    api_url: str,
    interval: int,
) -> Registration:
    """Insert this orchestrator's row; drop the rows of this host's dead orchestrators."""
    values: dict[str, Any] = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "holder": holder,
        "version": __version__,
        "schema_revision": schema_revision,
        "isolation": isolation,
        "key_id": master_key.key_id,
        "api_url": api_url,
        "interval": interval,
    }
    async with db.engine.begin() as conn:
        row_id = (await conn.execute(text(REGISTER_SQL), values)).scalar_one()
        same_host = (await conn.execute(text(SAME_HOST_SQL), {"host": values["host"], "id": row_id})).all()
        dead = [r.id for r in same_host if not _pid_alive(int(r.pid))]
        for dead_id in dead:
            await conn.execute(text(DEREGISTER_SQL), {"id": dead_id})
    log.info(
        "orchestrator registered",
        extra={"action": "orchestrator_registered", "orchestrator_id": str(row_id), "dropped": len(dead)},
    )
    return Registration(id=row_id, values=values)


async def beat(db: Database, registration: Registration) -> str | None:
    """One heartbeat (and prune); returns the database's recorded master key id."""

    async def once() -> str | None:
        async with db.engine.begin() as conn:
            found = (await conn.execute(text(HEARTBEAT_SQL), {"id": registration.id})).first()
            if found is None:
                await conn.execute(text(REINSERT_SQL), {"id": registration.id, **registration.values})
            await conn.execute(text(PRUNE_SQL))
            key_id = (await conn.execute(text(DATABASE_KEY_SQL))).scalar_one_or_none()
            return None if key_id is None else str(key_id)

    return await retry_transient(once, what="heartbeat")


async def deregister(db: Database, registration: Registration) -> None:
    """Remove this orchestrator's row (a clean stop); a failure only leaves a row that goes stale."""
    try:
        async with db.engine.begin() as conn:
            await conn.execute(text(DEREGISTER_SQL), {"id": registration.id})
    except Exception as exc:
        log.warning(
            "could not remove this orchestrator from the registry: %s",
            type(exc).__name__,
            extra={"action": "orchestrator_deregister_failed"},
        )


async def list_orchestrators(conn: AsyncConnection) -> list[dict[str, Any]]:
    """Every registered orchestrator, oldest first, with ``alive`` (heartbeat within three intervals)."""
    return [dict(r) for r in (await conn.execute(text(LIST_SQL))).mappings()]


async def run_heartbeat(
    db: Database, registration: Registration, master_key: MasterKey, *, interval: float, stop: asyncio.Event
) -> None:
    """Beat every ``interval`` seconds until ``stop``; refuse (stop ``up``) when the key was rotated away."""
    from company_agents.master_key.owner import owner_mismatch

    async def step() -> None:
        recorded = await beat(db, registration)
        if recorded is not None and recorded != master_key.key_id:
            registration.refused = owner_mismatch(master_key, recorded)
            log.error(
                "%s",
                registration.refused.message,
                extra={"action": "master_key_changed", "key_id": master_key.key_id, "recorded": recorded},
            )
            stop.set()

    await run_loop("heartbeat", step, interval=interval, stop=stop)
