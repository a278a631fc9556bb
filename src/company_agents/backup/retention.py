"""Which backups to keep: the newest of each of the last N days and the last M weeks (UTC)."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from company_agents.backup.records import all_backups, mark_deleted
from company_agents.db.database import Database
from company_agents.settings import Settings

log = logging.getLogger(__name__)

# Leftovers of a backup or restore that was killed half-way; removed by prune once this old.
STALE_SECONDS = 6 * 3600
LEFTOVER_PREFIXES = (".staging-", ".restore-", ".verify-")


def select_retained(
    backups: Iterable[tuple[str, datetime]], *, keep_daily: int, keep_weekly: int
) -> set[str]:
    """The names to keep among ``(name, time)`` pairs; pure, so it is tested on a synthetic calendar.

    A day (UTC calendar date) or a week (ISO week) counts only if it has a backup, so a machine that
    was off for a fortnight still keeps its last ``keep_daily`` daily backups. Within a day or week the
    newest backup represents it. The newest backup overall is always kept, whatever the settings.
    """
    ordered = sorted(backups, key=lambda b: (b[1], b[0]), reverse=True)
    keep: set[str] = {ordered[0][0]} if ordered else set()
    days: set[object] = set()
    weeks: set[object] = set()
    for name, when in ordered:
        day = when.date()
        if day not in days and len(days) < keep_daily:
            keep.add(name)
        days.add(day)
        week = when.isocalendar()[:2]
        if week not in weeks and len(weeks) < keep_weekly:
            keep.add(name)
        weeks.add(week)
    return keep


def prune_backups(
    settings: Settings, db: Database | None = None, *, dry_run: bool = False
) -> tuple[list[Path], list[Path]]:
    """Delete this home's backups that retention does not keep; return ``(kept, removed)`` (this home's).

    With ``db``, retention is decided over every backup the database records, on every host
    (``backup.records``), so the instance keeps N daily and M weekly in all; only this home's files are
    deleted, and their records marked. Without it, over this home's files alone.
    """
    directory = settings.backups_dir
    if not directory.is_dir():
        return [], []
    candidates = all_backups(settings, db, read_local=False)
    keys = {f"{r.host}\0{r.path}": r for r in candidates}
    keep = select_retained(
        ((key, r.created_at) for key, r in keys.items()),
        keep_daily=settings.backup_keep_daily,
        keep_weekly=settings.backup_keep_weekly,
    )
    ours = sorted((r for r in candidates if r.here), key=lambda r: r.name)
    removed_records = [r for r in ours if f"{r.host}\0{r.path}" not in keep]
    kept = [r.path for r in ours if f"{r.host}\0{r.path}" in keep]
    removed = [r.path for r in removed_records]
    if not dry_run:
        for record in removed_records:
            record.path.unlink(missing_ok=True)
            if db is not None and record.recorded:
                mark_deleted(db, record.host, record.path)
            log.info("backup pruned", extra={"action": "backup_pruned", "path": str(record.path)})
        cutoff = time.time() - STALE_SECONDS
        for leftover in directory.iterdir():
            if leftover.name.startswith(LEFTOVER_PREFIXES) and leftover.is_dir():
                if leftover.stat().st_mtime < cutoff:
                    shutil.rmtree(leftover, ignore_errors=True)
    return kept, removed
