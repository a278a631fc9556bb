"""API tokens as the API and ``token list --json`` show them: never the token or its hash."""

from __future__ import annotations

from uuid import UUID

from company_agents.api.schemas.common import Public, UtcTime


class WhoAmI(Public):
    token_id: UUID
    name: str
    scopes: list[str]
    company_id: UUID | None
    created_at: UtcTime
    expires_at: UtcTime | None


class ApiToken(Public):
    id: UUID
    name: str
    env: str
    hint: str
    scopes: list[str]
    company_id: UUID | None
    created_by: str
    created_at: UtcTime
    expires_at: UtcTime | None
    last_used_at: UtcTime | None
    rotated_at: UtcTime | None
    revoked_at: UtcTime | None
