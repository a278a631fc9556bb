"""A backup: ``<home>/data/backups/<UTC timestamp>.tar.gz``, and reading one back.

Members, in this order::

    backup.json             first: what the backup holds and a checksum of every other member
    database.tar            a ``db export`` archive (its own manifest and per-table checksums)
    audit-events.jsonl      the audit trail, one JSON object per event, from the same snapshot
    audit-anchor.json       the newest seal in that snapshot (``audit.anchor``), when there is one
    runs/…                  the retained run workspaces (<home>/runs)
    secrets/master.key      only with --include-secrets

Everything is first staged in a private directory next to the backups and then packed, so the file
that appears under its final name is always complete, and ``backup.json`` can list checksums of
exactly what was packed even while run workspaces change underneath.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from psycopg import sql

from company_agents.audit.anchor import snapshot_anchor
from company_agents.db.database import Database
from company_agents.errors import ArchiveError
from company_agents.master_key import MasterKey, load_master_key
from company_agents.master_key.owner import check_owner
from company_agents.settings import Settings
from company_agents.transfer.archive import CHUNK, ArchiveReader
from company_agents.transfer.export import snapshot, write_export
from company_agents.transfer.progress import ProgressFn
from company_agents.transfer.tables import Conn

FORMAT = "company-agents-backup"
FORMAT_VERSION = 1
INFO = "backup.json"
DATABASE = "database.tar"
AUDIT = "audit-events.jsonl"
ANCHOR = "audit-anchor.json"
RUNS = "runs"
MASTER_KEY = "secrets/master.key"
# A second backup within the same second gets _01, _02…: names then sort in creation order.
NAME_RE = re.compile(r"^(\d{8}T\d{6}Z)(?:_(\d{2,}))?\.tar\.gz$")
STAMP = "%Y%m%dT%H%M%SZ"
# Packing a mostly-compressed payload: level 1 keeps the run workspaces small without burning CPU on
# database.tar, which is compressed already.
GZIP_LEVEL = 1

AUDIT_JSONL_SQL = "SELECT row_to_json(e)::text FROM audit_events e ORDER BY e.id"


@dataclass(frozen=True)
class BackupInfo:
    """The contents of ``backup.json``, plus where the file is and how big."""

    path: Path
    raw: dict[str, Any]

    @property
    def created_at(self) -> datetime:
        return datetime.fromisoformat(str(self.raw["created_at"]))

    @property
    def includes_secrets(self) -> bool:
        return self.raw.get("secrets") is not None

    @property
    def size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def contents(self) -> list[str]:
        db = self.raw["database"]
        parts = [
            f"database ({db['total_rows']} rows)",
            f"runs ({len(self.raw['runs']['files'])} files)",
            f"audit ({self.raw['audit']['events']} events)",
        ]
        if self.includes_secrets:
            parts.append("secrets")
        return parts

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.path.name,
            "path": str(self.path),
            "created_at": self.raw["created_at"],
            "bytes": self.size,
            "includes_secrets": self.includes_secrets,
            "schema_revision": self.raw["database"]["schema_revision"],
            "database_rows": self.raw["database"]["total_rows"],
            "run_files": len(self.raw["runs"]["files"]),
            "audit_events": self.raw["audit"]["events"],
            "contents": self.contents(),
        }


def backup_time(name: str) -> datetime | None:
    """The UTC time a backup file's name records, or None for a file that is not a backup."""
    match = NAME_RE.match(name)
    if match is None:
        return None
    return datetime.strptime(match.group(1), STAMP).replace(tzinfo=UTC)


def _free_name(directory: Path, now: datetime) -> Path:
    stamp = now.strftime(STAMP)
    path = directory / f"{stamp}.tar.gz"
    n = 1
    while path.exists():  # two backups in one second (tests, a manual one next to the scheduled one)
        path = directory / f"{stamp}_{n:02d}.tar.gz"
        n += 1
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def write_audit_jsonl(conn: Conn, path: Path) -> int:
    """Write the audit trail as JSON lines (read in ``conn``'s snapshot); return the event count."""
    count = 0
    with path.open("w", encoding="utf-8") as out, conn.cursor(name="audit_jsonl") as cur:
        cur.itersize = 5000
        cur.execute(sql.SQL(AUDIT_JSONL_SQL))
        for (line,) in cur:
            out.write(f"{line}\n")
            count += 1
    return count


def _copy_runs(source: Path, dest: Path) -> list[dict[str, Any]]:
    """Copy the run workspaces; files that vanish meanwhile (a workspace being deleted) are skipped."""
    files: list[dict[str, Any]] = []
    dest.mkdir(parents=True, exist_ok=True)
    if not source.is_dir():
        return files
    for root, dirs, names in os.walk(source):
        dirs.sort()
        rel_root = Path(root).relative_to(source)
        (dest / rel_root).mkdir(parents=True, exist_ok=True)
        for name in sorted(names):
            src = Path(root) / name
            if src.is_symlink() or not src.is_file():
                continue  # a workspace's symlinks may point anywhere; they are not backed up
            target = dest / rel_root / name
            try:
                shutil.copy2(src, target)
            except FileNotFoundError:
                continue
            files.append(
                {
                    "path": (PurePosixPath(RUNS) / rel_root.as_posix() / name).as_posix(),
                    "size": target.stat().st_size,
                    "sha256": _sha256(target),
                }
            )
    return files


def create_backup(
    settings: Settings,
    db: Database,
    *,
    include_secrets: bool = False,
    progress: ProgressFn | None = None,
    now: datetime | None = None,
    scheduled: bool = False,
) -> BackupInfo:
    """Write a backup of the database, the run workspaces and the audit trail (and the key, if asked),
    and record it in the database (``backup.records``) so every host lists it."""
    from company_agents.backup.records import record_backup  # it reads backups with this module

    key: MasterKey | None = load_master_key(settings, create=False) if include_secrets else None
    if key is not None:  # a backup that carries a key must carry the one its secrets need
        check_owner(db, key)
    directory = settings.backups_dir
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    created = (now or datetime.now(UTC)).astimezone(UTC)
    path = _free_name(directory, created)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=directory))
    try:
        with snapshot(db) as conn:
            manifest = write_export(conn, staging / DATABASE, progress=progress)
            events = write_audit_jsonl(conn, staging / AUDIT)
            # The anchor of the seals this backup holds (not the home's, which may be a moment
            # ahead): restored with it, and kept off-site, it proves those seals existed.
            anchor = snapshot_anchor(conn)
        if anchor is not None:
            (staging / ANCHOR).write_text(json.dumps(anchor.to_dict(), indent=2) + "\n")
        runs = _copy_runs(settings.runs_dir, staging / RUNS)
        info: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": created.isoformat(timespec="seconds"),
            "source": {"embedded": db.is_embedded, "server_version": manifest.server_version},
            "database": {
                "file": DATABASE,
                "sha256": _sha256(staging / DATABASE),
                "schema_revision": manifest.schema_revision,
                "total_rows": manifest.total_rows,
                "tables": {t.name: t.rows for t in manifest.tables},
            },
            "audit": {"file": AUDIT, "sha256": _sha256(staging / AUDIT), "events": events},
            "audit_anchor": None
            if anchor is None
            else {"file": ANCHOR, "sha256": _sha256(staging / ANCHOR), "seal_id": anchor.seal_id},
            "runs": {"files": runs},
            "secrets": None,
        }
        if key is not None:
            key_path = staging / MASTER_KEY
            key_path.parent.mkdir(mode=0o700)
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(key.key)
            info["secrets"] = {"file": MASTER_KEY, "key_id": key.key_id}
        (staging / INFO).write_text(json.dumps(info, indent=2) + "\n")
        partial = staging / "backup.tar.gz.partial"
        with tarfile.open(partial, "w:gz", compresslevel=GZIP_LEVEL, format=tarfile.PAX_FORMAT) as tar:
            for arcname in [INFO, DATABASE, AUDIT, *([ANCHOR] if anchor is not None else [])]:
                tar.add(staging / arcname, arcname=arcname)
            tar.add(staging / RUNS, arcname=RUNS)
            if key is not None:
                tar.add(staging / MASTER_KEY, arcname=MASTER_KEY)
        with partial.open("rb") as fh:
            os.fsync(fh.fileno())
        partial.chmod(0o600)
        os.replace(partial, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result = BackupInfo(path=path, raw=info)
    record_backup(db, result, scheduled=scheduled)
    return result


def _parse_info(path: Path, raw: bytes) -> dict[str, Any]:
    try:
        info = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArchiveError(f"{path.name}: {INFO} is corrupt ({exc})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise ArchiveError(f"{path.name} is not a Company Agents backup")
    version = info.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ArchiveError(f"{path.name} has backup format {version!r}; this version reads {FORMAT_VERSION}")
    for key in ("created_at", "database", "audit", "runs"):
        if key not in info:
            raise ArchiveError(f"{path.name}: {INFO} lacks {key}")
    return info


def read_backup_info(path: Path) -> BackupInfo:
    """Read only ``backup.json`` (the first member): cheap, for listings. Does not check the rest."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            first = tar.next()
            if first is None or first.name != INFO or not first.isfile():
                raise ArchiveError(f"{path.name} is not a Company Agents backup (no {INFO})")
            fh = tar.extractfile(first)
            raw = fh.read() if fh is not None else b""
    except (tarfile.TarError, zlib.error, OSError, EOFError) as exc:
        raise ArchiveError(f"{path.name} is not a readable backup ({exc})") from None
    return BackupInfo(path=path, raw=_parse_info(path, raw))


def list_backups(settings: Settings) -> list[BackupInfo | tuple[Path, str]]:
    """Every backup in the backups directory, oldest first; unreadable ones as ``(path, reason)``."""
    directory = settings.backups_dir
    if not directory.is_dir():
        return []
    out: list[BackupInfo | tuple[Path, str]] = []
    for path in sorted(directory.iterdir()):
        if backup_time(path.name) is None:
            continue
        try:
            out.append(read_backup_info(path))
        except ArchiveError as exc:
            out.append((path, exc.message))
    return out


def _safe_member(name: str) -> PurePosixPath:
    rel = PurePosixPath(name)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise ArchiveError(f"backup member {name!r} has an unsafe path")
    return rel


def unpack_backup(path: Path, dest: Path) -> BackupInfo:
    """Unpack the backup into ``dest`` and check every member against ``backup.json``.

    Raises ``ArchiveError`` on any damage; nothing outside ``dest`` is written.
    """
    seen: dict[str, str] = {}
    info_raw: bytes | None = None
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in _members(tar):
                rel = _safe_member(member.name)
                if info_raw is None and rel.as_posix() != INFO:
                    raise ArchiveError(f"{path.name} is not a Company Agents backup (no {INFO} first)")
                target = dest.joinpath(*rel.parts)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True, mode=0o700)
                    continue
                if not member.isfile():
                    raise ArchiveError(f"backup member {member.name!r} is not a regular file")
                target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                fh = tar.extractfile(member)
                digest = hashlib.sha256()
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out:
                    while fh is not None and (block := fh.read(CHUNK)):
                        digest.update(block)
                        out.write(block)
                if info_raw is None:
                    info_raw = target.read_bytes()
                seen[rel.as_posix()] = digest.hexdigest()
            # Read the gzip stream to its end: its CRC covers the tar padding after the last member,
            # which no member checksum does (a flipped bit there must still refuse the file).
            stream = tar.fileobj
            while stream is not None and stream.read(CHUNK):
                pass
    except (tarfile.TarError, zlib.error, OSError, EOFError) as exc:
        raise ArchiveError(f"{path.name} is corrupt or truncated ({exc})") from None
    if info_raw is None:
        raise ArchiveError(f"{path.name} is not a Company Agents backup (empty)")
    info = _parse_info(path, info_raw)
    expected = {
        DATABASE: info["database"]["sha256"],
        AUDIT: info["audit"]["sha256"],
        **{f["path"]: f["sha256"] for f in info["runs"]["files"]},
    }
    if info.get("audit_anchor") is not None:
        expected[ANCHOR] = info["audit_anchor"]["sha256"]
    secrets = info.get("secrets")
    if secrets is not None:
        expected[MASTER_KEY] = None  # checked by key id below
    del seen[INFO]
    if seen.keys() != expected.keys():
        missing = sorted(expected.keys() - seen.keys())
        extra = sorted(seen.keys() - expected.keys())
        raise ArchiveError(f"{path.name} does not match its {INFO} (missing {missing}, unlisted {extra})")
    for name, sha in expected.items():
        if sha is not None and seen[name] != sha:
            raise ArchiveError(f"{path.name} is corrupt: {name} does not match its checksum")
    if secrets is not None:
        key = MasterKey((dest / MASTER_KEY).read_bytes(), "backup")
        if key.key_id != secrets["key_id"]:
            raise ArchiveError(f"{path.name} is corrupt: the master key does not match its key id")
    with (dest / AUDIT).open("rb") as fh:
        events = sum(1 for _ in fh)
    if events != info["audit"]["events"]:
        raise ArchiveError(f"{path.name} is corrupt: the audit export holds {events} events")
    return BackupInfo(path=path, raw=info)


def _members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    while (member := tar.next()) is not None:
        yield member


def verify_backup(
    path: Path, *, progress: ProgressFn | None = None, workdir: Path | None = None
) -> BackupInfo:
    """Check a backup end to end (every member's checksum, every table's rows) without restoring it."""
    if not path.is_file():
        raise ArchiveError(f"{path} does not exist or is not a file")
    staging = Path(tempfile.mkdtemp(prefix=".verify-", dir=workdir))
    try:
        info = unpack_backup(path, staging)
        with ArchiveReader(staging / DATABASE) as archive:
            archive.verify(progress)
        return info
    finally:
        shutil.rmtree(staging, ignore_errors=True)
