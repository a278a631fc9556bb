"""Webhook endpoints and deliveries as the API and ``webhook list --json`` show them (never the secret)."""

from __future__ import annotations

from uuid import UUID

from pydantic import Field

from company_agents.api.schemas.common import Body, Public, UtcTime


class WebhookEndpoint(Public):
    id: UUID
    company_id: UUID
    url: str
    events: list[str]
    secret_name: str
    description: str
    enabled: bool
    created_at: UtcTime


class WebhookEndpointCreated(WebhookEndpoint):
    # The ``whsec_…`` signing secret, in this response only (it lives in the secret store).
    secret: str


class WebhookDelivery(Public):
    id: int
    endpoint_id: UUID
    event_id: int
    event_type: str
    status: str
    attempts: int
    next_attempt_at: UtcTime
    last_status_code: int | None
    last_error: str | None
    created_at: UtcTime
    delivered_at: UtcTime | None


class WebhookQueued(Public):
    delivery_id: int


class NewWebhook(Body):
    url: str = Field(min_length=8, max_length=2048, pattern=r"^https?://[^/?#@\s]+")
    events: list[str] = Field(min_length=1, max_length=32)
    description: str = Field(default="", max_length=500)
