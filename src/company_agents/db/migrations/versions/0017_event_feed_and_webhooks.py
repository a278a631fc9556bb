"""The company event feed and webhooks: ``audit_events.txid``, a feed trigger, endpoints and deliveries.

``audit_events.txid`` records the writing transaction (``pg_current_xact_id()``). The feed reads events
ordered by ``(txid, id)`` and only below ``pg_snapshot_xmin(pg_current_snapshot())``: every transaction
under that horizon has ended, so the set a reader sees there never changes afterwards and a cursor can
never be overtaken by a late commit (identity ids are allocated before commit; ``id > last`` alone
would skip them). Older rows keep ``txid = 0`` (they sort first, by id).

The BEFORE INSERT trigger ``audit_events_feed`` (before ``audit_events_mac`` by name; the MAC does not
cover ``txid``) sets ``txid``, queues one NOTIFY per company per transaction (PostgreSQL folds identical
notifications) to wake streams, and writes a webhook delivery per matching enabled endpoint. A row that
arrives with a ``txid`` (``db import``, a restore) is history: it keeps its value and fans out nothing.

``ca_event_type`` maps an audit action to its public event type; ``events.types`` is its Python twin
(a test keeps them equal).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02
Kind: expand (a column with a constant default, an index, two tables, functions and a trigger)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

EVENT_TYPE_FUNCTION = """
CREATE FUNCTION ca_event_type(action text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT CASE
    WHEN action = 'task.created' THEN 'task.created'
    WHEN action IN ('task.claimed', 'task.started') THEN 'run.started'
    WHEN action IN ('task.completed', 'task.failed') THEN 'run.finished'
    WHEN action LIKE 'task.%' THEN 'task.updated'
    WHEN action LIKE 'run.%' THEN 'run.updated'
    WHEN action = 'approval.requested' THEN 'approval.requested'
    WHEN action IN ('approval.decided', 'approval.expired') THEN 'approval.decided'
    WHEN action LIKE 'approval.%' THEN 'approval.rules_changed'
    WHEN action LIKE 'budget.breach.%' THEN 'budget.breached'
    WHEN action LIKE 'budget.%' THEN 'budget.updated'
    WHEN action LIKE 'cost.%' THEN 'cost.adjusted'
    WHEN action = 'agent.hired' THEN 'agent.hired'
    WHEN action LIKE 'agent.%' THEN 'agent.updated'
    WHEN action LIKE 'webhook.%' THEN 'webhook.changed'
    ELSE 'audit.recorded'
END
$$
"""

# Schema-qualified calls: a search_path cannot shadow them.
FEED_FUNCTION = """
CREATE FUNCTION ca_audit_event_feed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    etype text;
BEGIN
    IF NEW.txid <> 0 THEN
        RETURN NEW;
    END IF;
    NEW.txid := pg_catalog.pg_current_xact_id()::text::bigint;
    IF NEW.company_id IS NULL THEN
        RETURN NEW;
    END IF;
    PERFORM pg_catalog.pg_notify('company_agents_events', NEW.company_id::text);
    -- The hot path: a company without an enabled endpoint costs one index probe.
    IF NEW.action <> 'webhook.tested' AND EXISTS (
        SELECT 1 FROM public.webhook_endpoints w WHERE w.company_id = NEW.company_id AND w.enabled
    ) THEN
        etype := public.ca_event_type(NEW.action);
        INSERT INTO public.webhook_deliveries (endpoint_id, company_id, event_id, event_type)
        SELECT w.id, w.company_id, NEW.id, etype
        FROM public.webhook_endpoints w
        WHERE w.company_id = NEW.company_id AND w.enabled
          AND EXISTS (
              SELECT 1 FROM pg_catalog.unnest(w.events) p
              WHERE etype LIKE pg_catalog.replace(p, '*', '%')
          );
    END IF;
    RETURN NEW;
END
$$
"""


def upgrade() -> None:
    # A constant default: no table rewrite, and the history triggers never see an UPDATE.
    op.add_column("audit_events", sa.Column("txid", sa.BigInteger(), server_default="0", nullable=False))
    op.create_index(
        "ix_audit_events_company_id_txid_id", "audit_events", ["company_id", "txid", "id"], unique=False
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("events", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("secret_name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("url ~ '^https?://[^/?#@\\s]+'", name=op.f("ck_webhook_endpoints_url_scheme")),
        sa.CheckConstraint("cardinality(events) >= 1", name=op.f("ck_webhook_endpoints_events_not_empty")),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_webhook_endpoints_company_id_companies"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_index("ix_webhook_endpoints_company_id", "webhook_endpoints", ["company_id"], unique=False)
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("endpoint_id", sa.Uuid(), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "next_attempt_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'succeeded', 'failed')", name=op.f("ck_webhook_deliveries_status")
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_deliveries_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_webhook_deliveries_endpoint_id_id", "webhook_deliveries", ["endpoint_id", "id"], unique=False
    )
    op.execute(EVENT_TYPE_FUNCTION)
    op.execute(FEED_FUNCTION)
    op.execute(
        "CREATE TRIGGER audit_events_feed BEFORE INSERT ON audit_events "
        "FOR EACH ROW EXECUTE FUNCTION ca_audit_event_feed()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER audit_events_feed ON audit_events")
    op.execute("DROP FUNCTION ca_audit_event_feed()")
    op.execute("DROP FUNCTION ca_event_type(text)")
    op.drop_index("ix_webhook_deliveries_endpoint_id_id", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_due", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_webhook_endpoints_company_id", table_name="webhook_endpoints")
    op.drop_table("webhook_endpoints")
    op.drop_index("ix_audit_events_company_id_txid_id", table_name="audit_events")
    op.drop_column("audit_events", "txid")
