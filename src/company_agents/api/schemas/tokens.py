"""API tokens as the API and ``token list --json`` show them: never the token or its hash."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field

from company_agents.api.schemas.common import Body, Public, UtcTime
from company_agents.api.schemas.companies import SLUG_PATTERN


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


class ApiTokenCreated(ApiToken):
    # The token itself, in this response only (the database keeps its hash).
    token: str


# Over HTTP a token's level is read, write or admin, and ``company`` restricts it to one company (the
# same as a ``company:<id>`` scope: ``company:<id>:read`` is ``read`` restricted so). The CLI's
# ``--scopes`` still takes the company forms (api_tokens.parse_scopes). Here the schema can say all
# of it, so every schema-valid body is one the domain accepts: two companies in one list could not be.
SCOPE_PATTERN = r"^(read|write|admin)$"


class TokenCreate(Body):
    name: str = Field(
        min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"
    )
    scopes: list[Annotated[str, Field(pattern=SCOPE_PATTERN)]] = Field(min_length=1, max_length=8)
    # Restrict the token to this company (slug or id): adds company:<id>.
    company: str | None = Field(default=None, pattern=SLUG_PATTERN)
    env: Literal["dev", "prod"] = "dev"
    # When it stops working.
    expires_at: UtcTime | None = None
