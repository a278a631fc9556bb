"""The audit anchor: the newest seal, recorded outside the database, in ``<home>/audit-anchor.json``.

Seals prove order, deletion and insertion inside the sealed part of the trail, but deleting the newest
seals *together with* their events leaves a shorter trail that is consistent in itself. The anchor is
the answer: whoever seals (``up``'s sealer, a CLI command's seal pass) or verifies a trail records the
newest seal it made or saw, its hash and key id; ``audit verify`` then fails when that seal is missing
from the database or different. Every backup carries the anchor of the seals it holds.

The anchor only moves forward, and only along the chain: it is not advanced when the seal it names is
no longer in the database (that is the evidence ``audit verify`` needs). Several orchestrators sharing
one database with different homes: each home anchors what it sealed or saw, and verifies against its
own. Writes are atomic (a temporary file renamed over it, mode 0600) and serialised by a lock file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents.db.schema import audit_events, audit_seals
from company_agents.settings import Settings

log = logging.getLogger(__name__)

ANCHOR_FILE = "audit-anchor.json"
FORMAT = "company-agents-audit-anchor v1"

HEAD_SEAL_SQL = "SELECT id, seal_hash, last_event_id, key_id FROM audit_seals ORDER BY id DESC LIMIT 1"


@dataclass(frozen=True)
class Anchor:
    """The newest seal a home knows of."""

    seal_id: int
    seal_hash: str
    last_event_id: int
    key_id: str
    at: str
    # The first event that carried a MAC, once this home has seen one sealed: from there on, every
    # event must carry a valid MAC (a seal alone no longer vouches for it), and the sealer leaves out
    # events without one. Kept here, outside the database, so stripping MACs cannot move it.
    macs_from: int | None = None

    @classmethod
    def from_seal(cls, seal: Mapping[Any, Any], *, macs_from: int | None = None) -> Anchor:
        return cls(
            seal_id=int(seal["id"]),
            seal_hash=str(seal["seal_hash"]),
            last_event_id=int(seal["last_event_id"]),
            key_id=str(seal["key_id"]),
            at=datetime.now(UTC).isoformat(timespec="seconds"),
            macs_from=macs_from,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "sealId": self.seal_id,
            "sealHash": self.seal_hash,
            "lastEventId": self.last_event_id,
            "keyId": self.key_id,
            "at": self.at,
            "macsFrom": self.macs_from,
        }

    @classmethod
    def from_dict(cls, raw: object) -> Anchor:
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise ValueError("not an audit anchor")
        try:
            return cls(
                seal_id=int(raw["sealId"]),
                seal_hash=str(raw["sealHash"]),
                last_event_id=int(raw["lastEventId"]),
                key_id=str(raw["keyId"]),
                at=str(raw["at"]),
                macs_from=None if raw.get("macsFrom") is None else int(raw["macsFrom"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed audit anchor ({exc})") from None


def anchor_path(settings: Settings) -> Path:
    return settings.home / ANCHOR_FILE


def read_anchor(path: Path) -> Anchor | None:
    """The anchor at ``path``, or None when there is none; raises ``ValueError`` when it is unreadable."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return Anchor.from_dict(json.loads(raw))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not JSON ({exc})") from None


def anchored_macs_from(path: Path | None) -> int | None:
    """The anchor's ``macs_from`` (None without an anchor, or an unreadable one)."""
    if path is None:
        return None
    try:
        anchor = read_anchor(path)
    except ValueError:
        return None
    return None if anchor is None else anchor.macs_from


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    lock = path.with_name(path.name + ".lock")
    fd = os.open(lock, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _replace(path: Path, anchor: Anchor) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(anchor.to_dict(), indent=2) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_anchor(path: Path, anchor: Anchor, *, force: bool = False) -> bool:
    """Record ``anchor`` if it is newer than the one at ``path`` (or always, with ``force``: a restore).

    Once set, ``macs_from`` never changes (except by ``force``). Returns whether the file changed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        if not force:
            try:
                current = read_anchor(path)
            except ValueError:
                current = None  # unreadable: replaced by a good one
            if current is not None:
                if current.macs_from is not None:
                    anchor = replace(anchor, macs_from=current.macs_from)
                newer = anchor.seal_id > current.seal_id
                if not newer and not (current.macs_from is None and anchor.macs_from is not None):
                    return False
                if not newer:
                    anchor = replace(current, macs_from=anchor.macs_from)
        _replace(path, anchor)
    return True


async def _seal_hash(conn: AsyncConnection, seal_id: int) -> str | None:
    row = (await conn.execute(select(audit_seals.c.seal_hash).where(audit_seals.c.id == seal_id))).first()
    return None if row is None else str(row[0])


async def next_anchor(conn: AsyncConnection, path: Path) -> Anchor | None:
    """The anchor to record after sealing on ``conn``: the chain head, if the anchored seal is still there.

    Write it (``write_anchor``) only once the transaction has committed. Returns None when there is
    nothing to advance, or when the anchored seal is gone or changed: then the anchor is kept as it is,
    as evidence for ``audit verify``, and an error is logged.
    """
    head = (
        (await conn.execute(select(audit_seals).order_by(audit_seals.c.id.desc()).limit(1)))
        .mappings()
        .first()
    )
    if head is None:
        return None
    try:
        current = read_anchor(path)
    except ValueError:
        current = None
    head_id = int(head["id"])
    if current is not None:
        found: str | None
        if current.seal_id > head_id:
            found = None
        elif current.seal_id == head_id:
            found = str(head["seal_hash"])
        else:
            found = await _seal_hash(conn, current.seal_id)
        if found != current.seal_hash:
            log.error(
                "the seal the audit anchor names is missing or changed; the anchor is kept",
                extra={"action": "audit_anchor_mismatch", "seal_id": current.seal_id},
            )
            return None
        if current.seal_id == head_id and current.macs_from is not None:
            return None
    macs_from = current.macs_from if current is not None else None
    if macs_from is None:
        # The first MAC'd event among those sealed since the anchor (a range scan on the primary key).
        since = current.last_event_id if current is not None else 0
        found_id = (
            await conn.execute(
                select(func.min(audit_events.c.id)).where(
                    audit_events.c.id > since,
                    audit_events.c.id <= int(head["last_event_id"]),
                    audit_events.c.mac.is_not(None),
                )
            )
        ).scalar_one()
        macs_from = None if found_id is None else int(found_id)
        if current is not None and current.seal_id == head_id and macs_from is None:
            return None
    return Anchor.from_seal(head, macs_from=macs_from)


def snapshot_anchor(conn: psycopg.Connection[Any]) -> Anchor | None:
    """The anchor of the newest seal as ``conn``'s snapshot sees it (for a backup)."""
    row = conn.execute(HEAD_SEAL_SQL).fetchone()
    if row is None:
        return None
    return Anchor.from_seal({"id": row[0], "seal_hash": row[1], "last_event_id": row[2], "key_id": row[3]})
