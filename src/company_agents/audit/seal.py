"""The audit sealer: a background job that chains new audit events into signed seals.

Each seal covers the events with ids in ``[first_event_id, last_event_id]`` that exist when it is made.
Its ``events_hash`` is ``v1:<root>:<manifest>``:

- ``manifest`` (base64) lists, per event in id order, the id (8 bytes, big-endian) and the first 16
  bytes of the SHA-256 of the event's canonical encoding: ``audit verify`` uses it to name the event
  that was changed, deleted or inserted, not just the seal;
- ``root`` (hex) is the SHA-256 over each event's id and full digest, in id order.

``seal_hash`` is the SHA-256 over the seal's fields and the previous seal's hash (the chain), and
``signature`` is an HMAC-SHA256 of ``seal_hash`` under a key HKDF-derived from the master key; ``key_id``
names that master key, so seals made before a key rotation still verify (``master_key.rotation.known_keys``).

Only events whose ids can no longer change are sealed. Identity values are handed out when a row is
inserted but transactions commit in any order, so sealing "everything up to max(id)" could skip an
event that commits a moment later with a lower id (verify would then call it back-dated). The sealer
therefore seals up to a *settled watermark*: it reads the sequence's last value W, then the virtual
transaction ids of every transaction running in this database at that moment (``pg_locks``, locktype
``virtualxid``: every transaction holds its own from its first statement, before it can draw an id).
Once none of those is still running, every id <= W is committed or rolled back for good, so ids
missing from a seal never existed. A long transaction delays sealing, never the task path. (Prepared
two-phase transactions are not covered; we never use them.) Exactly one sealer works at a time across
processes: ``pg_try_advisory_xact_lock``, with the chain head read after taking it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, LiteralString

from sqlalchemy import Label, LargeBinary, func, insert, literal_column, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from company_agents import crypto
from company_agents.audit.anchor import anchored_macs_from, next_anchor, write_anchor
from company_agents.db import locks
from company_agents.db.database import ORCHESTRATOR_APP_NAME
from company_agents.db.schema import audit_events, audit_seals
from company_agents.master_key import MasterKey

log = logging.getLogger(__name__)

SEALER_LOCK = locks.SEALER
MAX_SEAL_EVENTS = 1000
DIGEST_PREFIX_BYTES = 16
_ENTRY = struct.Struct(">q")

LAST_ASSIGNED_ID_SQL: LiteralString = (
    "SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence('audit_events', 'id')::regclass), 0)"
)
# Transactions of this database only (others cannot insert our events). pg_stat_activity is read from a
# per-transaction snapshot: RUNNING_VXIDS_SQL runs right after CLEAR_STATS_SNAPSHOT_SQL so it is fresh.
CLEAR_STATS_SNAPSHOT_SQL: LiteralString = "SELECT pg_stat_clear_snapshot()"
RUNNING_VXIDS_SQL: LiteralString = (
    "SELECT l.virtualxid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'virtualxid' AND l.granted AND l.mode = 'ExclusiveLock' "
    "AND l.pid <> pg_backend_pid() "
    "AND a.datid = (SELECT oid FROM pg_database WHERE datname = current_database())"
)
# One round trip for a CLI command to decide whether to seal: events newer than the chain head, and no
# orchestrator (``up``, whose sealer runs every second) connected to this database.
SEAL_PASS_NEEDED_SQL: LiteralString = (
    "SELECT " + LAST_ASSIGNED_ID_SQL.removeprefix("SELECT ") + " > coalesce(("
    "SELECT last_event_id FROM audit_seals ORDER BY id DESC LIMIT 1), 0) "
    "AND NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
    "AND application_name = '" + ORCHESTRATOR_APP_NAME + "' AND pid <> pg_backend_pid())"
)
STILL_RUNNING_SQL: LiteralString = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'virtualxid' AND granted "
    "AND mode = 'ExclusiveLock' AND virtualxid = ANY(:vxids)"
)


# --- canonical encoding --------------------------------------------------------------------------

# The digest of one event, computed by the server (in C: several times cheaper than Python, and it
# keeps the sealer's load off the orchestrator's event loop). The canonical encoding is the text of a
# jsonb array [id, company_id, actor, action, subject_type, subject_id, payload, created_at as UTC ISO
# with microseconds], UTF-8: jsonb's text form is normalised (object keys sorted, shorter first, then
# bytewise; no duplicate keys; numbers as stored; fixed ", " and ": " separators) and has been stable
# since PostgreSQL 9.4. Functions are schema-qualified so a search_path cannot shadow them.
# The per-event MAC (migration 0008's trigger, audit.mac) is taken over the same encoding.
EVENT_CANONICAL_SQL: LiteralString = (
    "pg_catalog.convert_to(pg_catalog.jsonb_build_array("
    "id, company_id, actor, action, subject_type, subject_id, payload, "
    "pg_catalog.to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    ")::text, 'UTF8')"
)
EVENT_DIGEST_SQL: LiteralString = "pg_catalog.sha256(" + EVENT_CANONICAL_SQL + ")"
event_digest: Label[bytes] = literal_column(EVENT_DIGEST_SQL, LargeBinary).label("digest")

EVENT_COLUMNS = (
    audit_events.c.id,
    audit_events.c.company_id,
    audit_events.c.actor,
    audit_events.c.action,
    audit_events.c.subject_type,
    audit_events.c.subject_id,
    audit_events.c.payload,
    audit_events.c.created_at,
)


class EventsHasher:
    """Accumulates ``events_hash`` over events given in id order."""

    def __init__(self) -> None:
        self._root = hashlib.sha256()
        self._manifest = bytearray()

    def add(self, event_id: int, digest: bytes) -> None:
        self._root.update(_ENTRY.pack(event_id) + digest)
        self._manifest += _ENTRY.pack(event_id) + digest[:DIGEST_PREFIX_BYTES]

    @property
    def root(self) -> str:
        return self._root.hexdigest()

    def value(self) -> str:
        return f"v1:{self.root}:{base64.b64encode(bytes(self._manifest)).decode()}"


def parse_events_hash(value: str) -> tuple[str, list[tuple[int, bytes]]]:
    """``(root, [(event_id, digest_prefix), …])``; raises ``ValueError`` on a malformed value."""
    version, root, manifest_b64 = value.split(":")
    if version != "v1" or len(root) != 64:
        raise ValueError("unknown events_hash format")
    manifest = base64.b64decode(manifest_b64, validate=True)
    step = _ENTRY.size + DIGEST_PREFIX_BYTES
    if len(manifest) % step:
        raise ValueError("truncated manifest")
    return root, [
        (_ENTRY.unpack_from(manifest, i)[0], manifest[i + _ENTRY.size : i + step])
        for i in range(0, len(manifest), step)
    ]


def seal_hash(
    *, first: int, last: int, count: int, events_hash: str, prev_seal_hash: str | None, key_id: str
) -> str:
    fields = ["seal-v1", first, last, count, events_hash, prev_seal_hash, key_id]
    return hashlib.sha256(json.dumps(fields, separators=(",", ":")).encode()).hexdigest()


# --- the settled watermark -----------------------------------------------------------------------


@dataclass(frozen=True)
class Watermark:
    """Ids up to ``last_id`` are final once every transaction in ``vxids`` has ended."""

    last_id: int
    vxids: tuple[str, ...]


async def take_watermark(conn: AsyncConnection) -> Watermark:
    # Order matters: the id first, then the running transactions. Whoever drew an id <= last_id
    # had started before we read it, so it is either finished or among the vxids listed next.
    last_id = int((await conn.execute(text(LAST_ASSIGNED_ID_SQL))).scalar_one())
    await conn.execute(text(CLEAR_STATS_SNAPSHOT_SQL))
    vxids = tuple(str(v) for v in (await conn.execute(text(RUNNING_VXIDS_SQL))).scalars())
    return Watermark(last_id=last_id, vxids=vxids)


async def watermark_settled(conn: AsyncConnection, watermark: Watermark) -> bool:
    if not watermark.vxids:
        return True
    running = (await conn.execute(text(STILL_RUNNING_SQL), {"vxids": list(watermark.vxids)})).scalar_one()
    return int(running) == 0


# --- sealing -------------------------------------------------------------------------------------


async def chain_head(conn: AsyncConnection) -> Mapping[Any, Any] | None:
    return (
        (await conn.execute(select(audit_seals).order_by(audit_seals.c.id.desc()).limit(1)))
        .mappings()
        .first()
    )


def build_seal(
    events: Sequence[tuple[int, bytes]], prev_seal_hash: str | None, master_key: MasterKey
) -> dict[str, Any]:
    """The row of a seal over ``events`` (``(id, digest)`` in id order) chained after ``prev_seal_hash``."""
    hasher = EventsHasher()
    for event_id, event_hash in events:
        hasher.add(event_id, event_hash)
    fields: dict[str, Any] = {
        "first_event_id": events[0][0],
        "last_event_id": events[-1][0],
        "event_count": len(events),
        "events_hash": hasher.value(),
        "prev_seal_hash": prev_seal_hash,
        "key_id": master_key.key_id,
    }
    digest = seal_hash(
        first=fields["first_event_id"],
        last=fields["last_event_id"],
        count=fields["event_count"],
        events_hash=fields["events_hash"],
        prev_seal_hash=prev_seal_hash,
        key_id=master_key.key_id,
    )
    fields["seal_hash"] = digest
    fields["signature"] = crypto.seal_signature(master_key, digest.encode())
    return fields


async def seal_up_to(
    conn: AsyncConnection, master_key: MasterKey, last_id: int, *, macs_from: int | None = None
) -> int:
    """Seal every event after the chain head up to ``last_id`` (which must be settled).

    Takes the sealer lock on ``conn``'s transaction; returns the number of events sealed (0 when
    another sealer holds the lock). Once events carry MACs (from ``macs_from``, the anchor's, or from
    the first MAC'd event met), an event without one is left out: a seal never vouches for an event
    that a session without the key wrote. ``audit verify`` then names it.
    """
    locked = (await conn.execute(select(func.pg_try_advisory_xact_lock(SEALER_LOCK)))).scalar_one()
    if not locked:
        return 0
    head = await chain_head(conn)
    after = int(head["last_event_id"]) if head else 0
    prev_hash: str | None = head["seal_hash"] if head else None
    started = bool(
        (
            await conn.execute(
                select(audit_events.c.mac.is_not(None))
                .where(audit_events.c.id <= after)
                .order_by(audit_events.c.id.desc())
                .limit(1)
            )
        ).scalar()
    )
    sealed = 0
    while after < last_id:
        rows = (
            await conn.execute(
                select(audit_events.c.id, event_digest, audit_events.c.mac.is_not(None).label("has_mac"))
                .where(audit_events.c.id > after, audit_events.c.id <= last_id)
                .order_by(audit_events.c.id)
                .limit(MAX_SEAL_EVENTS)
            )
        ).all()
        if not rows:
            break
        events: list[tuple[int, bytes]] = []
        for r in rows:
            started = started or bool(r.has_mac) or (macs_from is not None and int(r.id) >= macs_from)
            if started and not r.has_mac:
                log.warning(
                    "audit event %d has no MAC: left out of the seal",
                    r.id,
                    extra={"action": "audit_event_unproven", "event_id": int(r.id)},
                )
                continue
            events.append((int(r.id), bytes(r.digest)))
        if not events:
            after = int(rows[-1].id)
            continue
        row = build_seal(events, prev_hash, master_key)
        await conn.execute(insert(audit_seals).values(**row))
        sealed += len(events)
        after, prev_hash = int(rows[-1].id), row["seal_hash"]
    return sealed


async def seal_pending(
    conn: AsyncConnection,
    master_key: MasterKey,
    *,
    settle_timeout: float = 10.0,
    poll: float = 0.02,
    macs_from: int | None = None,
) -> int:
    """Seal everything committed so far, waiting (up to ``settle_timeout``) for running transactions.

    For tests and one-off use; the orchestrator's loop (``runtime.sealer``) never waits inside a
    transaction. Returns the number of events sealed.
    """
    # The lock first: concurrent callers waiting for each other's open transactions would all time out.
    if not (await conn.execute(select(func.pg_try_advisory_xact_lock(SEALER_LOCK)))).scalar_one():
        return 0
    watermark = await take_watermark(conn)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settle_timeout
    while not await watermark_settled(conn, watermark):
        if loop.time() >= deadline:
            return 0
        await asyncio.sleep(poll)
    return await seal_up_to(conn, master_key, watermark.last_id, macs_from=macs_from)


async def seal_tick(
    conn: AsyncConnection, master_key: MasterKey, pending: Watermark | None, *, macs_from: int | None = None
) -> tuple[int, Watermark]:
    """One step of the loop: seal up to ``pending`` if it has settled; return the next watermark.

    A watermark is only replaced once it has settled, so a long transaction delays sealing but the
    sealer never seals past it.
    """
    sealed = 0
    if pending is not None:
        if not await watermark_settled(conn, pending):
            return 0, pending
        sealed = await seal_up_to(conn, master_key, pending.last_id, macs_from=macs_from)
    return sealed, await take_watermark(conn)


async def seal_pass(
    engine: AsyncEngine, master_key: MasterKey, *, anchor: Path | None = None, settle_timeout: float = 1.0
) -> int:
    """Seal what is pending when no sealer is running: what a CLI command does after it wrote events.

    Costs one query when there is nothing to seal or an orchestrator (whose sealer will) is connected.
    Gives up quietly when another sealer holds the lock or a transaction does not end within
    ``settle_timeout``: the events keep their MACs, and the next pass seals them. Advances ``anchor``.
    """
    async with engine.begin() as conn:
        if not (await conn.execute(text(SEAL_PASS_NEEDED_SQL))).scalar_one():
            return 0
        sealed = await seal_pending(
            conn, master_key, settle_timeout=settle_timeout, macs_from=anchored_macs_from(anchor)
        )
        moved = await next_anchor(conn, anchor) if sealed and anchor is not None else None
    if moved is not None and anchor is not None:
        write_anchor(anchor, moved)
    return sealed
