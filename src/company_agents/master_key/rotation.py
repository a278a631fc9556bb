"""The master key's lifecycle beyond loading it: rotation, crash recovery, and the ring of old keys.

Rotation (``rotate_master_key``) orders its steps so that the database commit is the one decision point:

1. read and decrypt every secret under the old key (a wrong key fails here; nothing has changed);
2. write the new key to ``master.key.new`` (O_EXCL, 0600, fsync);
3. in ONE transaction: re-encrypt every secret under the new key, move the database's record of its
   owning key (``database_key``) to the new key id and append a ``master_key.rotated`` audit event
   naming it; commit (other orchestrators see the record move on their next heartbeat and stop);
4. copy the old key to ``master.key.<UTC time>.bak`` (0600), then rename ``master.key.new`` over
   ``master.key``.

A crash before the commit leaves the old state (``master.key`` still matches the rows); after it, the new
state is committed but the files may lag. ``recover_pending_rotation`` (run by ``startup.instance`` and
by every CLI command that loads the key) finishes the job: when ``master.key.new`` exists it asks the
database whether that key was committed, and either completes steps 4 or sets the unused file aside as
``master.key.<time>.unused``. Files are never deleted: a key that might matter is only ever renamed.

Old keys stay in the backups, so ``audit verify`` can check seals signed before a rotation: the key
ring (``known_keys``) is the current key plus every 32-byte ``master.key*`` file beside it and in
``<home>/secrets``, indexed by key id. Only file keys (``MASTER_KEY_PATH``/``file://``) can be rotated.
"""

from __future__ import annotations

import logging
import os
import secrets as pyrandom
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import LiteralString

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from company_agents import audit, crypto
from company_agents.db.database import Database
from company_agents.db.schema import database_key, secrets
from company_agents.errors import MasterKeyError
from company_agents.master_key import MASTER_KEY_BYTES, MasterKey, check_key_file_mode, master_key_location
from company_agents.secrets_store import (
    MASTER_KEY_ROTATED,
    SECRETS_KEY_LOCK,
    check_master_key,
)
from company_agents.settings import Settings

log = logging.getLogger(__name__)

# Whether the database committed a rotation to ``%s`` (the new key id).
ROTATION_COMMITTED_SQL: LiteralString = """
SELECT EXISTS (SELECT 1 FROM audit_events WHERE action = 'master_key.rotated'
               AND payload->>'newKeyId' = %(key_id)s)
    OR EXISTS (SELECT 1 FROM secrets WHERE key_id = %(key_id)s)
    OR EXISTS (SELECT 1 FROM database_key WHERE key_id = %(key_id)s)
"""

Hook = Callable[[str], None]


@dataclass(frozen=True)
class RotationResult:
    old_key_id: str
    new_key_id: str
    reencrypted: int
    backup: Path | None


def key_file(settings: Settings) -> Path:
    """The master key file; rotation and recovery need a file key."""
    kind, where = master_key_location(settings)
    if kind != "file":
        raise MasterKeyError(
            "master-key rotation needs a key file (MASTER_KEY_PATH or file://); the key comes from "
            f"${where}: rotate it in your secret manager instead"
        )
    return Path(where)


def pending_path(path: Path) -> Path:
    return path.with_name(path.name + ".new")


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_exclusive(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    _fsync_dir(path.parent)


def _read_key(path: Path) -> MasterKey | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return MasterKey(data, f"file://{path}") if len(data) == MASTER_KEY_BYTES else None


def known_keys(settings: Settings, current: MasterKey | None = None) -> dict[str, MasterKey]:
    """Every master key we can find, by key id: ``current``, then the key file and its backups."""
    ring: dict[str, MasterKey] = {}
    if current is not None:
        ring[current.key_id] = current
    kind, where = master_key_location(settings)
    dirs = [settings.secrets_dir]
    names = ["master.key"]
    if kind == "file":
        dirs.insert(0, Path(where).parent)
        names.insert(0, Path(where).name)
    for directory in dict.fromkeys(dirs):
        if not directory.is_dir():
            continue
        for name in dict.fromkeys(names):
            for path in sorted(directory.glob(f"{name}*")):
                if not path.is_file() or path.stat().st_mode & 0o077:
                    continue  # an unsafe file is not a key we trust
                key = _read_key(path)
                if key is not None:
                    ring.setdefault(key.key_id, key)
    return ring


def _backup_exists(path: Path, key_id: str) -> bool:
    for candidate in path.parent.glob(f"{path.name}.*.bak"):
        key = _read_key(candidate)
        if key is not None and key.key_id == key_id:
            return True
    return False


def _finish(path: Path, new_key_id: str, hook: Hook | None) -> Path | None:
    """Steps 4: back up the old key (once), then move the new key into place."""
    backup: Path | None = None
    old = _read_key(path)
    if old is not None and old.key_id != new_key_id and not _backup_exists(path, old.key_id):
        backup = path.with_name(f"{path.name}.{_stamp()}.bak")
        _write_exclusive(backup, old.key)
    if hook:
        hook("backed_up")
    os.replace(pending_path(path), path)
    _fsync_dir(path.parent)
    if hook:
        hook("renamed")
    return backup


async def rotate_master_key(
    settings: Settings,
    engine: AsyncEngine,
    old_key: MasterKey,
    *,
    actor: str = audit.LOCAL_USER,
    hook: Hook | None = None,
) -> RotationResult:
    """Generate a new master key and re-encrypt every secret under it, crash-safely (see the module doc).

    ``hook`` is called with a step name after each step (tests use it to simulate a crash).
    """
    path = key_file(settings)
    new_path = pending_path(path)
    if new_path.exists():
        raise MasterKeyError(f"{new_path} exists: an earlier rotation is unfinished; start the CLI again")
    new_key = MasterKey(pyrandom.token_bytes(MASTER_KEY_BYTES), f"file://{path}")
    written = False
    async with engine.connect() as conn:
        txn = await conn.begin()
        try:
            # Exclusive: no secret is written under the old key while (or after) we re-encrypt.
            await conn.execute(select(func.pg_advisory_xact_lock(SECRETS_KEY_LOCK)))
            await check_master_key(conn, old_key)
            rows = (
                await conn.execute(
                    select(
                        secrets.c.id, secrets.c.company_id, secrets.c.name, secrets.c.value, secrets.c.nonce
                    )
                    .order_by(secrets.c.id)
                    .with_for_update()
                )
            ).all()
            aads = [crypto.secret_aad(r.company_id, r.name) for r in rows]
            plain = [
                crypto.decrypt(old_key, r.nonce, r.value, aad) for r, aad in zip(rows, aads, strict=True)
            ]
            _write_exclusive(new_path, new_key.key)
            written = True
            if hook:
                hook("new_key_written")
            for row, aad, value in zip(rows, aads, plain, strict=True):
                nonce, ciphertext = crypto.encrypt(new_key, value, aad)
                await conn.execute(
                    secrets.update()
                    .where(secrets.c.id == row.id)
                    .values(value=ciphertext, nonce=nonce, key_id=new_key.key_id, updated_at=func.now())
                )
            del plain
            await conn.execute(
                update(database_key)
                .where(database_key.c.id == 1)
                .values(key_id=new_key.key_id, recorded_at=func.now(), recorded_by=socket.gethostname())
            )
            await audit.record(
                conn,
                actor=actor,
                action=MASTER_KEY_ROTATED,
                subject_type="master_key",
                subject_id=new_key.key_id,
                payload={"oldKeyId": old_key.key_id, "newKeyId": new_key.key_id, "secrets": len(rows)},
            )
            if hook:
                hook("reencrypted")
        except BaseException as exc:
            await txn.rollback()
            # An ordinary failure before the commit: the new key encrypted nothing that stays.
            # (A crash leaves the file for recover_pending_rotation, which reaches the same verdict.)
            if written and isinstance(exc, Exception):
                new_path.rename(path.with_name(f"{path.name}.{_stamp()}.unused"))
            raise
        await txn.commit()  # the decision point
    if hook:
        hook("committed")
    backup = _finish(path, new_key.key_id, hook)
    log.warning(
        "master key rotated",
        extra={"action": "master_key_rotated", "old_key_id": old_key.key_id, "new_key_id": new_key.key_id},
    )
    return RotationResult(
        old_key_id=old_key.key_id,
        new_key_id=new_key.key_id,
        reencrypted=len(rows),
        backup=backup,
    )


def recover_pending_rotation(settings: Settings, db: Database) -> str | None:
    """Finish or roll back a rotation a crash interrupted; returns what was done, or None.

    Call before loading the master key (``startup.instance`` and the key-loading CLI commands do).
    """
    kind, where = master_key_location(settings)
    if kind != "file":
        return None
    path = Path(where)
    new_path = pending_path(path)
    if not new_path.exists():
        return None
    check_key_file_mode(new_path)
    new_key = _read_key(new_path)
    committed = False
    if new_key is not None:
        with db.connect() as conn:
            ready = conn.execute("SELECT to_regclass('secrets') IS NOT NULL").fetchone()
            if ready and ready[0]:
                row = conn.execute(ROTATION_COMMITTED_SQL, {"key_id": new_key.key_id}).fetchone()
                committed = bool(row and row[0])
    if committed and new_key is not None:
        _finish(path, new_key.key_id, None)
        outcome = "completed"
    else:
        new_path.rename(path.with_name(f"{path.name}.{_stamp()}.unused"))
        _fsync_dir(path.parent)
        outcome = "rolled back"
    log.warning(
        "interrupted master-key rotation %s",
        outcome,
        extra={"action": "master_key_rotation_recovered", "outcome": outcome},
    )
    return outcome
