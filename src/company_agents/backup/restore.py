"""``backup restore``: a whole instance back from one backup file, into an empty home or over one.

Order: unpack and check every member; refuse early (workspaces present, an orchestrator running, data
in the database) unless ``--replace``; import the database (one verified transaction, see
``transfer.import_``); then swap in the run workspaces and place the master key. The key a home had
before is never deleted: when the backup carries a different one, the old file is kept beside it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from company_agents.audit.anchor import Anchor, anchor_path, read_anchor, write_anchor
from company_agents.backup.bundle import ANCHOR, DATABASE, MASTER_KEY, RUNS, BackupInfo, unpack_backup
from company_agents.db.database import Database, database
from company_agents.errors import CompanyAgentsError, TargetNotEmpty
from company_agents.home import ensure_home
from company_agents.master_key import MasterKey, load_master_key, master_key_location
from company_agents.settings import Settings
from company_agents.transfer.import_ import ImportResult, import_archive
from company_agents.transfer.progress import ProgressFn


@dataclass(frozen=True)
class RestoreResult:
    """What came back, and what the operator still has to do about the secrets."""

    backup: BackupInfo
    imported: ImportResult
    run_files: int
    key: str
    secrets: int
    secrets_note: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "backup": self.backup.path.name,
            "created_at": self.backup.raw["created_at"],
            "rows": self.imported.total_rows,
            "revision": self.imported.revision,
            "run_files": self.run_files,
            "master_key": self.key,
            "secrets": self.secrets,
            "secrets_note": self.secrets_note,
        }


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _has_entries(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def _place_key(settings: Settings, key: MasterKey) -> str:
    """Put the backup's key where this home reads its key; return what happened."""
    kind, where = master_key_location(settings)
    if kind == "env":
        current = os.environ.get(where, "")
        try:
            same = load_master_key(settings, create=False).key_id == key.key_id if current else False
        except CompanyAgentsError:
            same = False
        # We cannot write an environment variable: say where the key is instead of printing it.
        return "matches" if same else f"set ${where} to the key in the backup's {MASTER_KEY}"
    path = Path(where)
    if path.exists():
        if path.read_bytes() == key.key:
            return "matches"
        aside = path.with_name(f"{path.name}.replaced-{_stamp()}")
        os.replace(path, aside)
        outcome = f"restored (the previous key is kept as {aside})"
    else:
        outcome = "restored"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.key)
        fh.flush()
        os.fsync(fh.fileno())
    return outcome


def _secret_key_ids(db: Database) -> dict[str, int]:
    with db.connect() as conn:
        rows = conn.execute("SELECT key_id, count(*) FROM secrets GROUP BY key_id ORDER BY key_id").fetchall()
    return {str(k): int(str(n)) for k, n in rows}


def _secrets_note(settings: Settings, key_ids: dict[str, int]) -> str:
    if not key_ids:
        return "the database holds no encrypted secrets"
    try:
        local = load_master_key(settings, create=False).key_id
    except CompanyAgentsError:
        local = None
    missing = sorted(k for k in key_ids if k != local)
    if not missing:
        return f"{sum(key_ids.values())} encrypted secrets decrypt with this home's master key"
    kind, where = master_key_location(settings)
    place = where if kind == "file" else f"${where}"
    return (
        f"{sum(key_ids[k] for k in missing)} encrypted secrets need the master key with id "
        f"{', '.join(missing)}, which this backup does not hold: put that key at {place} "
        "before `company-agents up`"
    )


def _reset_anchor(settings: Settings, anchor: Anchor | None) -> None:
    path = anchor_path(settings)
    if anchor is not None:
        write_anchor(path, anchor, force=True)
    elif path.exists():
        path.rename(path.with_name(f"{path.name}.replaced-{_stamp()}"))


def _swap_runs(unpacked: Path, runs_dir: Path) -> None:
    old = runs_dir.with_name(f".runs-before-restore-{_stamp()}")
    if runs_dir.exists():
        runs_dir.rename(old)
    shutil.move(str(unpacked), str(runs_dir))
    runs_dir.chmod(0o700)
    shutil.rmtree(old, ignore_errors=True)


def restore_backup(
    settings: Settings, path: Path, *, replace: bool = False, progress: ProgressFn | None = None
) -> RestoreResult:
    """Restore the backup at ``path`` into the instance ``settings`` describe."""
    ensure_home(settings)
    # Unpacked inside the home: private, and on the same filesystem as runs/ so the swap is a rename.
    staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=settings.backups_dir))
    try:
        info = unpack_backup(path, staging)
        if _has_entries(settings.runs_dir) and not replace:
            raise TargetNotEmpty(
                f"{settings.runs_dir} already holds run workspaces; restore into an empty home, "
                "or pass --replace"
            )
        with database(settings) as db:
            imported = import_archive(db, staging / DATABASE, replace=replace, progress=progress)
            key_ids = _secret_key_ids(db)
        # The database went back to the backup's state: so does the home's anchor (the restore is the
        # operator's decision to go back; the anchor of a backup without seals is removed).
        restored = read_anchor(staging / ANCHOR) if info.raw.get("audit_anchor") else None
        _reset_anchor(settings, restored)
        (staging / RUNS).mkdir(exist_ok=True)
        _swap_runs(staging / RUNS, settings.runs_dir)
        key_outcome = "not in backup"
        if info.includes_secrets:
            key_outcome = _place_key(settings, MasterKey((staging / MASTER_KEY).read_bytes(), "backup"))
        return RestoreResult(
            backup=info,
            imported=imported,
            run_files=len(info.raw["runs"]["files"]),
            key=key_outcome,
            secrets=sum(key_ids.values()),
            secrets_note=_secrets_note(settings, key_ids),
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
