"""The audit trail: append-only events, and the seals that chain them (tamper evidence).

``audit_events`` has no foreign key to companies on purpose: deleting or archiving a company must
never delete (or block on) its history. UPDATE, DELETE and TRUNCATE are refused by triggers created in
the migrations; another trigger (0006) MACs each event at insert.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Identity,
    Index,
    Integer,
    LargeBinary,
    Table,
    Text,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB

from company_agents.db.schema.base import created_at, metadata

audit_events = Table(
    "audit_events",
    metadata,
    # The sequence gives the chain its order; sealing follows it.
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("company_id", Uuid, nullable=True),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("subject_type", Text, nullable=False),
    Column("subject_id", Text, nullable=False),
    Column("payload", JSONB, nullable=False, server_default="{}"),
    created_at(),
    # HMAC-SHA256 of the event, set at insert by the audit_events_mac trigger with the session's key
    # (see audit.mac); NULL when the writer held no key. ``mac_key_id`` names the master key.
    Column("mac", LargeBinary, nullable=True),
    Column("mac_key_id", Text, nullable=True),
    # The writing transaction's id (``pg_current_xact_id()``), set by the audit_events_feed trigger
    # (0017). The event feed orders by (txid, id) and reads only below the oldest running transaction,
    # so a late commit can never slip behind a reader's cursor (docs/events.md). 0 for older rows.
    Column("txid", BigInteger, nullable=False, server_default="0"),
    CheckConstraint("actor ~ '^(user|agent|system):.+'", name="actor_format"),
    CheckConstraint("action ~ '^[a-z_]+(\\.[a-z_]+)+$'", name="action_format"),
)
Index("ix_audit_events_company_id_created_at", audit_events.c.company_id, audit_events.c.created_at)
Index("ix_audit_events_company_id_txid_id", audit_events.c.company_id, audit_events.c.txid, audit_events.c.id)
Index("ix_audit_events_subject", audit_events.c.subject_type, audit_events.c.subject_id)

audit_seals = Table(
    "audit_seals",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("first_event_id", BigInteger, nullable=False),
    Column("last_event_id", BigInteger, nullable=False),
    Column("event_count", Integer, nullable=False),
    Column("events_hash", Text, nullable=False),
    Column("prev_seal_hash", Text, nullable=True),
    Column("seal_hash", Text, nullable=False),
    # Which master key derived the HMAC key, so verification survives a key rotation.
    Column("key_id", Text, nullable=False),
    Column("signature", Text, nullable=False),
    created_at(),
    CheckConstraint("last_event_id >= first_event_id", name="range_order"),
    CheckConstraint("event_count >= 1", name="event_count_positive"),
)
