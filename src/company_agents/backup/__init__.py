"""Backups of a whole instance: create, list, verify, restore, prune (scheduled in ``runtime.backups``)."""

from __future__ import annotations

from company_agents.backup.bundle import (
    BackupInfo,
    create_backup,
    list_backups,
    read_backup_info,
    verify_backup,
)
from company_agents.backup.restore import RestoreResult, restore_backup
from company_agents.backup.retention import prune_backups, select_retained

__all__ = [
    "BackupInfo",
    "RestoreResult",
    "create_backup",
    "list_backups",
    "prune_backups",
    "read_backup_info",
    "restore_backup",
    "select_retained",
    "verify_backup",
]
