"""The record of every backup in the database (``backups``; docs/backup-and-switching.md), so any host
lists them all and retention decides from one list.

A backup file lives on the host that wrote it, in that home's backups directory. The record names the
host and the path; a file is *here* when both match this process (two homes on one machine are two
holders). Retention (``backup.retention``) is decided over every record, but a host only ever deletes
its own files, and marks their records deleted; another host's files wait for that host's next prune.
Files written before the record existed, or while the database could not be reached, are listed from
the backups directory as unrecorded and count for retention like the others.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, LiteralString, cast

from psycopg.types.json import Jsonb

from company_agents.backup.bundle import BackupInfo, backup_time, read_backup_info
from company_agents.db.database import Database
from company_agents.errors import ArchiveError
from company_agents.settings import Settings

log = logging.getLogger(__name__)

RECORD_SQL: LiteralString = """
INSERT INTO backups (created_at, host, path, name, size_bytes, contents, includes_secrets, scheduled,
                     schema_revision)
VALUES (%(created_at)s, %(host)s, %(path)s, %(name)s, %(size)s, %(contents)s, %(secrets)s, %(scheduled)s,
        %(revision)s)
ON CONFLICT (host, path) DO UPDATE SET created_at = excluded.created_at, size_bytes = excluded.size_bytes,
    contents = excluded.contents, includes_secrets = excluded.includes_secrets,
    scheduled = excluded.scheduled, schema_revision = excluded.schema_revision, deleted_at = NULL
"""
LIST_SQL: LiteralString = """
SELECT host, path, name, created_at, size_bytes, contents, includes_secrets, scheduled, schema_revision
FROM backups WHERE deleted_at IS NULL AND to_regclass('backups') IS NOT NULL
ORDER BY created_at, host, path
"""
DELETED_SQL: LiteralString = """
UPDATE backups SET deleted_at = now() WHERE host = %(host)s AND path = %(path)s AND deleted_at IS NULL
"""
TABLE_READY_SQL: LiteralString = "SELECT to_regclass('backups') IS NOT NULL"


def this_host() -> str:
    return socket.gethostname()


@dataclass(frozen=True)
class BackupRecord:
    """One backup, wherever it is: from the database's record, or an unrecorded file of this home."""

    host: str
    path: Path
    created_at: datetime
    size: int
    contents: list[str]
    includes_secrets: bool
    scheduled: bool
    schema_revision: str
    recorded: bool
    here: bool
    info: BackupInfo | None = None  # read from the file, when it is here

    @property
    def name(self) -> str:
        return self.path.name

    def to_dict(self) -> dict[str, Any]:
        base = self.info.to_dict() if self.info is not None else {}
        return {
            **base,
            "name": self.name,
            "path": str(self.path),
            "host": self.host,
            "here": self.here,
            "recorded": self.recorded,
            "created_at": base.get("created_at", self.created_at.isoformat(timespec="seconds")),
            "bytes": self.size,
            "includes_secrets": self.includes_secrets,
            "scheduled": self.scheduled,
            "schema_revision": self.schema_revision,
            "contents": self.contents,
        }


def is_here(settings: Settings, host: str, path: Path) -> bool:
    return host == this_host() and path.parent == settings.backups_dir


def _ready(db: Database) -> bool:
    with db.connect() as conn:
        row = conn.execute(TABLE_READY_SQL).fetchone()
    return bool(row and row[0])


def record_backup(db: Database, info: BackupInfo, *, scheduled: bool) -> None:
    """Record a backup just written; a failure is logged (the file is listed as unrecorded meanwhile)."""
    try:
        if not _ready(db):
            return
        with db.connect() as conn:
            conn.execute(
                RECORD_SQL,
                {
                    "created_at": info.created_at,
                    "host": this_host(),
                    "path": str(info.path),
                    "name": info.path.name,
                    "size": info.size,
                    "contents": Jsonb(info.contents()),
                    "secrets": info.includes_secrets,
                    "scheduled": scheduled,
                    "revision": str(info.raw["database"]["schema_revision"]),
                },
            )
    except Exception as exc:
        log.warning(
            "backup %s written but not recorded in the database: %s",
            info.path.name,
            type(exc).__name__,
            extra={"action": "backup_record_failed", "path": str(info.path)},
        )


def mark_deleted(db: Database, host: str, path: Path) -> None:
    with db.connect() as conn:
        conn.execute(DELETED_SQL, {"host": host, "path": str(path)})


def _local_files(settings: Settings) -> list[Path]:
    directory = settings.backups_dir
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_file() and backup_time(p.name) is not None)


def _read(path: Path) -> BackupInfo | None:
    try:
        return read_backup_info(path)
    except ArchiveError:
        return None


def all_backups(settings: Settings, db: Database | None, *, read_local: bool = True) -> list[BackupRecord]:
    """Every backup the database records (on any host) and every unrecorded one in this home, oldest
    first. ``read_local`` reads each local file's ``backup.json`` for the full listing."""
    out: list[BackupRecord] = []
    seen: set[Path] = set()
    if db is not None and _ready(db):
        with db.connect() as conn:
            rows = conn.execute(LIST_SQL).fetchall()
        for host, path, _name, created, size, contents, secrets, scheduled, revision in rows:
            where = Path(str(path))
            here = is_here(settings, str(host), where)
            if here and not where.exists():
                continue  # deleted by hand: the record is stale (prune marks it)
            if here:
                seen.add(where)
            out.append(
                BackupRecord(
                    host=str(host),
                    path=where,
                    created_at=cast(datetime, created),
                    size=int(str(size)),
                    contents=[str(c) for c in cast(list[object], contents)],
                    includes_secrets=bool(secrets),
                    scheduled=bool(scheduled),
                    schema_revision=str(revision),
                    recorded=True,
                    here=here,
                    info=_read(where) if here and read_local else None,
                )
            )
    for path in _local_files(settings):
        if path in seen:
            continue
        info = _read(path) if read_local else None
        when = info.created_at if info is not None else backup_time(path.name)
        if when is None:  # pragma: no cover - _local_files only lists names with a time
            continue
        out.append(
            BackupRecord(
                host=this_host(),
                path=path,
                created_at=when,
                size=path.stat().st_size,
                contents=info.contents() if info is not None else ["unreadable"],
                includes_secrets=info.includes_secrets if info is not None else False,
                scheduled=False,
                schema_revision=str(info.raw["database"]["schema_revision"]) if info is not None else "",
                recorded=False,
                here=True,
                info=info,
            )
        )
    return sorted(out, key=lambda r: (r.created_at, r.host, str(r.path)))
