"""Webhook endpoints and their deliveries under ``/v1/companies/{company}/webhooks`` (admin scope)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, Query, Request

from company_agents.api.deps import Admin, LimitQuery, company_for, get_db, get_settings
from company_agents.api.middleware import request_id_of
from company_agents.api.schemas.common import Envelope, ListEnvelope, error_responses, one, page
from company_agents.api.schemas.webhooks import (
    NewWebhook,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEndpointCreated,
    WebhookQueued,
)

router = APIRouter(tags=["webhooks"])

DELIVERY_CURSOR = r"^d_[0-9]{1,18}$"


def _master_key(request: Request) -> Any:
    key = getattr(request.app.state, "master_key", None)
    if key is None:
        from company_agents.master_key import load_master_key

        key = load_master_key(get_settings(request), create=False)
    return key


@router.get(
    "/companies/{company}/webhooks",
    operation_id="listWebhooks",
    response_model=ListEnvelope[WebhookEndpoint],
    responses=error_responses(403, 404),
)
async def list_webhooks(request: Request, company: str, principal: Admin) -> Any:
    """The company's webhook endpoints (their secrets are never shown again)."""
    from company_agents.webhooks import endpoints

    async with get_db(request).engine.connect() as conn:
        row = await company_for(conn, principal, company)
        items = await endpoints.list_endpoints(conn, row["id"])
    return page(request_id_of(request), [WebhookEndpoint.of(i) for i in items], None)


@router.post(
    "/companies/{company}/webhooks",
    operation_id="createWebhook",
    status_code=201,
    response_model=Envelope[WebhookEndpointCreated],
    responses=error_responses(403, 404, 409),
)
async def create_webhook(request: Request, company: str, body: NewWebhook, principal: Admin) -> Any:
    """Add an endpoint; the response carries its ``whsec_`` signing secret, once."""
    from company_agents.webhooks import endpoints

    master_key = _master_key(request)
    async with get_db(request).engine.begin() as conn:
        row = await company_for(conn, principal, company)
        endpoint, secret = await endpoints.add_endpoint(
            conn,
            master_key,
            company_id=row["id"],
            url=body.url,
            events=body.events,
            description=body.description,
            actor=f"user:api-token:{principal.token_id}",
        )
    return one(request_id_of(request), WebhookEndpointCreated.of({**endpoint, "secret": secret}))


@router.delete(
    "/companies/{company}/webhooks/{endpoint_id}",
    operation_id="deleteWebhook",
    response_model=Envelope[WebhookEndpoint],
    responses=error_responses(403, 404),
)
async def delete_webhook(request: Request, company: str, endpoint_id: UUID, principal: Admin) -> Any:
    """Remove an endpoint, its deliveries and its signing secret."""
    from company_agents.webhooks import endpoints

    async with get_db(request).engine.begin() as conn:
        row = await company_for(conn, principal, company)
        endpoint = await endpoints.get_endpoint(conn, row["id"], endpoint_id)
        await endpoints.remove_endpoint(
            conn, row["id"], endpoint_id, actor=f"user:api-token:{principal.token_id}"
        )
    return one(request_id_of(request), WebhookEndpoint.of(endpoint))


@router.post(
    "/companies/{company}/webhooks/{endpoint_id}/test",
    operation_id="testWebhook",
    status_code=202,
    response_model=Envelope[WebhookQueued],
    responses=error_responses(403, 404),
)
async def test_webhook(request: Request, company: str, endpoint_id: UUID, principal: Admin) -> Any:
    """Queue a ``webhook.test`` event to this endpoint."""
    from company_agents.webhooks import endpoints

    async with get_db(request).engine.begin() as conn:
        row = await company_for(conn, principal, company)
        delivery_id = await endpoints.send_test(
            conn, row["id"], endpoint_id, actor=f"user:api-token:{principal.token_id}"
        )
    return one(request_id_of(request), WebhookQueued.of({"delivery_id": delivery_id}))


@router.get(
    "/companies/{company}/webhook-deliveries",
    operation_id="listWebhookDeliveries",
    response_model=ListEnvelope[WebhookDelivery],
    responses=error_responses(403, 404),
)
async def list_deliveries(
    request: Request,
    company: str,
    principal: Admin,
    endpoint: Annotated[UUID | None, Query(description="Only this endpoint's deliveries.")] = None,
    limit: LimitQuery = 50,
    cursor: Annotated[str | None, Query(pattern=DELIVERY_CURSOR)] = None,
) -> Any:
    """Deliveries, newest first, with their status, attempts and last response."""
    from company_agents.webhooks import endpoints

    before = int(cursor[2:]) if cursor else None
    async with get_db(request).engine.connect() as conn:
        row = await company_for(conn, principal, company)
        items = await endpoints.list_deliveries(
            conn, row["id"], endpoint_id=endpoint, limit=limit + 1, before=before
        )
    more = len(items) > limit
    items = items[:limit]
    next_cursor = f"d_{items[-1]['id']}" if more else None
    return page(request_id_of(request), [WebhookDelivery.of(i) for i in items], next_cursor)


@router.post(
    "/companies/{company}/webhook-deliveries/{delivery_id}/redeliver",
    operation_id="redeliverWebhook",
    status_code=202,
    response_model=Envelope[WebhookQueued],
    responses=error_responses(403, 404),
)
async def redeliver(
    request: Request,
    company: str,
    delivery_id: Annotated[int, Path(ge=1, le=2**62)],
    principal: Admin,
) -> Any:
    """Queue a delivery's event again, with the same ``webhook-id``."""
    from company_agents.webhooks import endpoints

    async with get_db(request).engine.begin() as conn:
        row = await company_for(conn, principal, company)
        new_id = await endpoints.redeliver(conn, row["id"], delivery_id)
    return one(request_id_of(request), WebhookQueued.of({"delivery_id": new_id}))
