"""Webhooks: endpoints (``endpoints``), Standard Webhooks signing (``signing``), the delivery worker
(``worker``) that drains the outbox the audit trigger fills (docs/events.md)."""
