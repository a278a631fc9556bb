"""Scheduled backups inside ``up``: when one is due, ``backup.schedule.backup_once`` (which takes the
advisory lock that makes it one backup at a time across orchestrators)."""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime, timedelta

from company_agents.backup.schedule import RETRY_AFTER, BackupCancelled, backup_once, next_due
from company_agents.db.database import Database
from company_agents.runtime.loop import run_loop
from company_agents.settings import Settings

log = logging.getLogger(__name__)


async def run_scheduled_backups(settings: Settings, db: Database, stop: asyncio.Event) -> None:
    """Back up every ``backup_interval_seconds`` until ``stop`` is set (0 turns scheduling off)."""
    if settings.backup_interval_seconds <= 0:
        log.info("scheduled backups are off", extra={"action": "backup_schedule_off"})
        # Wait all the same: `serve` stops every part as soon as one ends, so returning here would
        # stop `up` right after it started.
        await stop.wait()
        return
    started = datetime.now(UTC)
    retry_at: datetime | None = None
    cancel = threading.Event()

    async def step() -> float | None:
        nonlocal retry_at
        # The newest backup of any host (a query: in a thread, like the backup itself).
        due = (
            retry_at
            if retry_at is not None
            else await asyncio.to_thread(next_due, settings, started=started, db=db)
        )
        wait = (due - datetime.now(UTC)).total_seconds()
        if wait > 0:
            return wait
        # The backup runs in a thread (sync COPY); stopping sets `cancel`, which the export checks
        # between blocks, so shutdown does not wait for a whole backup.
        watcher = asyncio.create_task(_relay(stop, cancel))
        try:
            await asyncio.to_thread(backup_once, settings, db, cancel)
            retry_at = None
        except BackupCancelled:
            return None  # stopping: the loop ends
        except Exception:
            log.exception("scheduled backup failed", extra={"action": "backup_failed"})
            retry_at = datetime.now(UTC) + min(
                RETRY_AFTER, timedelta(seconds=settings.backup_interval_seconds)
            )
        finally:
            watcher.cancel()
        return 0.0

    await run_loop("scheduled_backup", step, interval=settings.backup_interval_seconds, stop=stop)


async def _relay(stop: asyncio.Event, cancel: threading.Event) -> None:
    await stop.wait()
    cancel.set()
