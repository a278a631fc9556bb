"""Per-event audit MACs: ``audit_events.mac`` and ``mac_key_id``, set by a BEFORE INSERT trigger.

The trigger computes HMAC-SHA256 over the event's canonical encoding (the same jsonb text the seals
digest) with the session key the process hands to its own connections (``audit.mac``), written from
the built-in ``sha256()`` so it needs no extension: ``sha256(opad || sha256(ipad || message))``, the
pads precomputed by the process. A session without the key leaves both columns NULL. A row that
arrives with a MAC (``db import``, a restore) keeps it: the trigger never re-MACs history.

Events already in the table keep a NULL MAC (the migration has no key): sealed ones stay proven by
their seals; unsealed ones are sealed by the next sealer pass (``up`` or any CLI command).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
Kind: expand (two nullable columns and a trigger)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# Schema-qualified calls: a search_path cannot shadow them. The canonical encoding must stay identical
# to audit_seal.EVENT_CANONICAL_SQL (a test checks the MAC from Python over the server's encoding).
MAC_FUNCTION = """
CREATE FUNCTION ca_audit_event_mac() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    setting text := pg_catalog.current_setting('company_agents.audit_mac_key', true);
    pads bytea;
BEGIN
    IF NEW.mac IS NOT NULL OR setting IS NULL OR setting = '' THEN
        RETURN NEW;
    END IF;
    pads := pg_catalog.decode(pg_catalog.split_part(setting, ':', 2), 'hex');
    NEW.mac_key_id := pg_catalog.split_part(setting, ':', 1);
    NEW.mac := pg_catalog.sha256(pg_catalog.substr(pads, 65, 64) || pg_catalog.sha256(
        pg_catalog.substr(pads, 1, 64) || pg_catalog.convert_to(pg_catalog.jsonb_build_array(
            NEW.id, NEW.company_id, NEW.actor, NEW.action, NEW.subject_type, NEW.subject_id, NEW.payload,
            pg_catalog.to_char(NEW.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
        )::text, 'UTF8')));
    RETURN NEW;
END
$$
"""


def upgrade() -> None:
    op.add_column("audit_events", sa.Column("mac", sa.LargeBinary(), nullable=True))
    op.add_column("audit_events", sa.Column("mac_key_id", sa.Text(), nullable=True))
    op.execute(MAC_FUNCTION)
    op.execute(
        "CREATE TRIGGER audit_events_mac BEFORE INSERT ON audit_events "
        "FOR EACH ROW EXECUTE FUNCTION ca_audit_event_mac()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER audit_events_mac ON audit_events")
    op.execute("DROP FUNCTION ca_audit_event_mac()")
    op.drop_column("audit_events", "mac_key_id")
    op.drop_column("audit_events", "mac")
