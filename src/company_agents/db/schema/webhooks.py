"""Webhooks: a company's endpoints, and the outbox of deliveries written with the events they carry.

A delivery row is inserted by the ``audit_events_feed`` trigger (migration 0017) in the transaction that
records the event, so an event is delivered if and only if it committed. The signing key lives in the
secret store under ``secret_name`` (a ``whsec_…`` value); this table never holds it.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Table,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY

from company_agents.db.schema.base import created_at, in_list, metadata, updated_at, uuid_pk

DELIVERY_STATUSES = ("pending", "succeeded", "failed")

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    uuid_pk(),
    Column("company_id", Uuid, ForeignKey("companies.id", ondelete="RESTRICT"), nullable=False),
    Column("url", Text, nullable=False),
    # Public event type patterns (``task.*``, ``approval.requested``, ``*``); matched by the trigger.
    Column("events", ARRAY(Text), nullable=False),
    Column("secret_name", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    created_at(),
    updated_at(),
    CheckConstraint("url ~ '^https?://[^/?#@\\s]+'", name="url_scheme"),
    CheckConstraint("cardinality(events) >= 1", name="events_not_empty"),
)
# The trigger's fast path: "does this company have an enabled endpoint?" is one probe of this index.
Index("ix_webhook_endpoints_company_id", webhook_endpoints.c.company_id)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("endpoint_id", Uuid, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False),
    Column("company_id", Uuid, nullable=False),
    # The audit event carried (no foreign key: audit_events has none either, and history outlives this).
    Column("event_id", BigInteger, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    created_at(),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    CheckConstraint(in_list("status", DELIVERY_STATUSES), name="status"),
)
# Workers claim due rows in this order; succeeded/failed rows drop out of the index.
Index(
    "ix_webhook_deliveries_due",
    webhook_deliveries.c.next_attempt_at,
    postgresql_where=text("status = 'pending'"),
)
Index("ix_webhook_deliveries_endpoint_id_id", webhook_deliveries.c.endpoint_id, webhook_deliveries.c.id)
