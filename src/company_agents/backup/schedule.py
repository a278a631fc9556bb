"""Scheduled backups (the loop inside ``up`` is ``runtime.backups``): one at a time across orchestrators.

Several orchestrators may share one database. Each runs the loop, but a backup is only taken under a
session-level advisory lock (``pg_try_advisory_lock``): whoever holds it backs up; the others skip this
round. Under the lock the newest backup is looked at again, in the database's record of every host's
backups (``backup.records``), so an orchestrator that just lost the race does not take a second backup
of the same moment, into its home or any other.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

from company_agents.backup.bundle import backup_time, create_backup
from company_agents.backup.records import all_backups
from company_agents.backup.retention import prune_backups
from company_agents.db import locks
from company_agents.db.database import Database
from company_agents.errors import CompanyAgentsError
from company_agents.settings import Settings

log = logging.getLogger(__name__)

BACKUP_LOCK_KEY = locks.BACKUP
# The first backup of a home without any waits this long after start, so `up` is not slowed.
FIRST_BACKUP_DELAY = timedelta(seconds=60)
RETRY_AFTER = timedelta(minutes=10)


class BackupCancelled(CompanyAgentsError):
    """The scheduled backup was cancelled because the orchestrator is stopping."""

    code = "backup_cancelled"


def latest_backup(settings: Settings, db: Database | None = None) -> datetime | None:
    """The newest backup: of any host when ``db`` is given (its records), else of this home."""
    if db is not None:
        return max((r.created_at for r in all_backups(settings, db, read_local=False)), default=None)
    directory = settings.backups_dir
    if not directory.is_dir():
        return None
    times = [t for p in directory.iterdir() if (t := backup_time(p.name)) is not None]
    return max(times, default=None)


def next_due(settings: Settings, *, started: datetime, db: Database | None = None) -> datetime:
    """When the next backup is due: an interval after the newest one (on any host, with ``db``)."""
    interval = timedelta(seconds=settings.backup_interval_seconds)
    latest = latest_backup(settings, db)
    if latest is None:
        return started + min(FIRST_BACKUP_DELAY, interval)
    return latest + interval


def backup_once(settings: Settings, db: Database, cancel: threading.Event | None = None) -> str | None:
    """Take one scheduled backup if this process wins the lock and one is due; return its name."""
    with db.connect() as conn:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (BACKUP_LOCK_KEY,)).fetchone()
        if not (row and row[0]):
            log.info("another orchestrator is backing up", extra={"action": "backup_skipped"})
            return None
        try:
            latest = latest_backup(settings, db)  # on any host: they share one schedule
            now = datetime.now(UTC)
            # A little slack, so a backup taken a moment early (clock, retries) still counts as current.
            slack = timedelta(seconds=settings.backup_interval_seconds * 0.9)
            if latest is not None and latest > now - slack:
                return None

            def check_cancel(_phase: str, _table: str, _done: int, _total: int | None) -> None:
                if cancel is not None and cancel.is_set():
                    raise BackupCancelled()

            info = create_backup(
                settings,
                db,
                include_secrets=settings.backup_include_secrets,
                progress=check_cancel,
                scheduled=True,
            )
            _, removed = prune_backups(settings, db)
            log.info(
                "scheduled backup written",
                extra={"action": "backup_created", "path": str(info.path), "pruned": len(removed)},
            )
            return info.path.name
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (BACKUP_LOCK_KEY,))
