"""Webhook endpoints: add, list, remove, test, redeliver, and a delivery listing with status."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from sqlalchemy import delete, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import audit, secrets_store
from company_agents.db.schema import webhook_deliveries, webhook_endpoints
from company_agents.errors import InvalidInput, NotFound
from company_agents.events.types import TEST_TYPE, check_patterns
from company_agents.master_key import MasterKey
from company_agents.webhooks.signing import new_secret

ENDPOINT_COLUMNS = (
    webhook_endpoints.c.id,
    webhook_endpoints.c.company_id,
    webhook_endpoints.c.url,
    webhook_endpoints.c.events,
    webhook_endpoints.c.secret_name,
    webhook_endpoints.c.description,
    webhook_endpoints.c.enabled,
    webhook_endpoints.c.created_at,
)


def check_url(url: str) -> str:
    """Only absolute http(s) URLs with a host, and no credentials in them (they would be listed)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("a webhook URL must be an absolute http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("a webhook URL must not carry credentials; the signature authenticates us")
    return url.strip()


def secret_name(endpoint_id: UUID) -> str:
    return f"webhook.{endpoint_id.hex}"


async def add_endpoint(
    conn: AsyncConnection,
    master_key: MasterKey,
    *,
    company_id: UUID,
    url: str,
    events: list[str],
    description: str = "",
    actor: str = audit.LOCAL_USER,
) -> tuple[dict[str, Any], str]:
    """Create an endpoint and its ``whsec_`` secret; returns the endpoint and the secret (shown once)."""
    url = check_url(url)
    patterns = check_patterns(events)
    endpoint_id = (await conn.execute(text("SELECT gen_random_uuid()"))).scalar_one()
    secret = new_secret()
    name = secret_name(endpoint_id)
    await secrets_store.create_secret(
        conn, master_key, company_id=company_id, name=name, value=secret, description="webhook signing key"
    )
    row = (
        (
            await conn.execute(
                insert(webhook_endpoints)
                .values(
                    id=endpoint_id,
                    company_id=company_id,
                    url=url,
                    events=patterns,
                    secret_name=name,
                    description=description,
                )
                .returning(*ENDPOINT_COLUMNS)
            )
        )
        .mappings()
        .one()
    )
    await audit.record(
        conn,
        actor=actor,
        action="webhook.added",
        subject_type="webhook",
        subject_id=endpoint_id,
        company_id=company_id,
        payload={"url": url, "events": patterns},
    )
    return dict(row), secret


async def list_endpoints(conn: AsyncConnection, company_id: UUID) -> list[dict[str, Any]]:
    query = (
        select(*ENDPOINT_COLUMNS)
        .where(webhook_endpoints.c.company_id == company_id)
        .order_by(webhook_endpoints.c.created_at, webhook_endpoints.c.id)
    )
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def get_endpoint(conn: AsyncConnection, company_id: UUID, endpoint_id: UUID) -> dict[str, Any]:
    row = (
        (
            await conn.execute(
                select(*ENDPOINT_COLUMNS).where(
                    webhook_endpoints.c.company_id == company_id, webhook_endpoints.c.id == endpoint_id
                )
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"webhook endpoint {endpoint_id} not found")
    return dict(row)


async def remove_endpoint(
    conn: AsyncConnection,
    company_id: UUID,
    endpoint_id: UUID,
    *,
    actor: str = audit.LOCAL_USER,
) -> None:
    """Delete an endpoint, its deliveries and its signing secret."""
    endpoint = await get_endpoint(conn, company_id, endpoint_id)
    await conn.execute(delete(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id))
    await secrets_store.delete_secret(conn, company_id=company_id, name=endpoint["secret_name"])
    await audit.record(
        conn,
        actor=actor,
        action="webhook.removed",
        subject_type="webhook",
        subject_id=endpoint_id,
        company_id=company_id,
        payload={"url": endpoint["url"]},
    )


async def send_test(
    conn: AsyncConnection, company_id: UUID, endpoint_id: UUID, *, actor: str = audit.LOCAL_USER
) -> int:
    """Queue a ``webhook.test`` delivery to one endpoint (whatever it subscribes to); returns its id."""
    await get_endpoint(conn, company_id, endpoint_id)
    event_id = await audit.record(
        conn,
        actor=actor,
        action="webhook.tested",
        subject_type="webhook",
        subject_id=endpoint_id,
        company_id=company_id,
    )
    return await _queue(conn, company_id, endpoint_id, event_id, TEST_TYPE)


async def redeliver(conn: AsyncConnection, company_id: UUID, delivery_id: int) -> int:
    """Queue the event of delivery ``delivery_id`` again (same ``webhook-id``); returns the new id."""
    row = (
        (
            await conn.execute(
                select(webhook_deliveries).where(
                    webhook_deliveries.c.company_id == company_id, webhook_deliveries.c.id == delivery_id
                )
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"webhook delivery {delivery_id} not found")
    return await _queue(conn, company_id, row["endpoint_id"], row["event_id"], row["event_type"])


async def _queue(
    conn: AsyncConnection, company_id: UUID, endpoint_id: UUID, event_id: int, etype: str
) -> int:
    result = await conn.execute(
        insert(webhook_deliveries)
        .values(endpoint_id=endpoint_id, company_id=company_id, event_id=event_id, event_type=etype)
        .returning(webhook_deliveries.c.id)
    )
    return int(result.scalar_one())


async def list_deliveries(
    conn: AsyncConnection,
    company_id: UUID,
    *,
    endpoint_id: UUID | None = None,
    limit: int = 50,
    before: int | None = None,
) -> list[dict[str, Any]]:
    """Deliveries newest first; ``before`` (a delivery id) continues a listing."""
    query = select(webhook_deliveries).where(webhook_deliveries.c.company_id == company_id)
    if before is not None:
        query = query.where(webhook_deliveries.c.id < before)
    if endpoint_id is not None:
        query = query.where(webhook_deliveries.c.endpoint_id == endpoint_id)
    query = query.order_by(webhook_deliveries.c.id.desc()).limit(limit)
    return [dict(r) for r in (await conn.execute(query)).mappings()]
