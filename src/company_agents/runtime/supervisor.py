"""``up`` keeps the embedded server it shares running: a dead postmaster is restarted within seconds.

Nothing else would restart it while ``up`` runs (a CLI command does, as a side effect of starting), so
after a ``kill -9`` or the OOM killer ``/healthz`` would stay degraded. Every ``CHECK_SECONDS`` the
postmaster named in ``postmaster.pid`` is checked (a file read and a look in /proc, no connection).
When it is gone it is started again through ``EmbeddedServer`` (which heals stale files; PostgreSQL's
crash recovery replays the WAL), this process is put back in the handle list, the pool's dead
connections are dropped, and the event is logged and audited. A postmaster that another process
restarted meanwhile is adopted the same way.
"""

from __future__ import annotations

import asyncio
import logging

from company_agents import audit
from company_agents.db.database import Database
from company_agents.db.embedded import EmbeddedServer
from company_agents.db.retry import OUTAGE, retry_transient
from company_agents.runtime.loop import run_loop

log = logging.getLogger(__name__)

CHECK_SECONDS = 1.0
ACTOR = "system:supervisor"


class EmbeddedSupervisor:
    """One check of the postmaster per step; remembers which postmaster this process is attached to."""

    def __init__(self, db: Database, server: EmbeddedServer) -> None:
        self.db = db
        self.server = server
        self.known = server.attached_pid
        self.down_since: float | None = None

    async def step(self) -> None:
        server = self.server
        loop = asyncio.get_running_loop()
        running = server.running_pid()
        if running is not None and running == self.known:
            return
        restarted_by = "another process" if running is not None else "orchestrator"
        if self.down_since is None:
            self.down_since = loop.time()
            log.error(
                "the embedded database server (pid %s) is gone; %s",
                self.known,
                "restarting it" if running is None else f"another process restarted it (pid {running})",
                extra={"action": "embedded_db_down"},
            )
        try:
            await asyncio.to_thread(server.start)
        except Exception as exc:  # e.g. the dead server's backends still hold its shared memory
            log.error(
                "could not restart the embedded database server (%s); retrying",
                exc,
                extra={"action": "embedded_db_restart_failed"},
            )
            return
        if server.running_pid() != server.attached_pid:  # attached to a server that is already gone
            return
        down_seconds = round(loop.time() - self.down_since, 3)
        previous, self.known, self.down_since = self.known, server.attached_pid, None
        # Pooled connections point at the dead server: drop them all now rather than one failed
        # checkout at a time (the engine stays, with a fresh pool).
        await self.db.engine.dispose()
        log.warning(
            "the embedded database server was restarted by %s in %.1fs (pid %s, was %s)",
            restarted_by,
            down_seconds,
            self.known,
            previous,
            extra={"action": "embedded_db_restarted"},
        )
        await _audit(self.db, server, previous=previous, restarted_by=restarted_by, down_seconds=down_seconds)


async def supervise_embedded(db: Database, stop: asyncio.Event, *, interval: float = CHECK_SECONDS) -> None:
    """Until ``stop``: restart the embedded server whenever its postmaster dies (no-op for DATABASE_URL)."""
    if db.embedded is None:
        # Nothing to supervise, but stay until stop like every part: up ends when any part ends.
        await stop.wait()
        return
    await run_loop(
        "embedded_supervisor", EmbeddedSupervisor(db, db.embedded).step, interval=interval, stop=stop
    )


async def _audit(
    db: Database, server: EmbeddedServer, *, previous: int | None, restarted_by: str, down_seconds: float
) -> None:
    async def write() -> None:
        async with db.engine.begin() as conn:
            await audit.record(
                conn,
                actor=ACTOR,
                action="system.database_restarted",
                subject_type="database",
                subject_id="embedded",
                payload={
                    "previousPid": previous,
                    "pid": server.attached_pid,
                    "restartedBy": restarted_by,
                    "downSeconds": down_seconds,
                },
            )

    try:
        # The server may still be finishing crash recovery (cannot_connect_now): a transient error.
        await retry_transient(write, what="audit database restart", backoff=OUTAGE, deadline=10)
    except Exception:
        log.exception("the database restart could not be audited", extra={"action": "audit_error"})
