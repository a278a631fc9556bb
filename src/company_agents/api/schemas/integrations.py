"""Integrations as the API and ``integration list --json`` show them: the credential's secret by name,
never its value. A new credential goes one way, in ``IntegrationCreate.credential``."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from pydantic import Field

from company_agents.api.schemas.common import Body, Public, UtcTime
from company_agents.api.schemas.secrets import SECRET_NAME_PATTERN

# As integrations.NAME_RE and KIND_RE.
INTEGRATION_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
KIND_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"


class Integration(Public):
    id: UUID
    kind: str
    name: str
    status: str
    scopes: list[str]
    config: dict[str, Any]
    # The secret holding its credential (by name), if it has one.
    credential_secret: str | None
    created_at: UtcTime
    last_used_at: UtcTime | None


class IntegrationCreate(Body):
    kind: str = Field(pattern=KIND_PATTERN, examples=["github"])
    name: str = Field(pattern=INTEGRATION_NAME_PATTERN)
    # Plain settings; a key that looks like a credential (token, secret, password…) is refused.
    config: dict[str, Any] = Field(default_factory=dict)
    scopes: list[Annotated[str, Field(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]] = Field(
        default_factory=list, max_length=64
    )
    # An existing secret of the company to use as the credential…
    secret: str | None = Field(default=None, pattern=SECRET_NAME_PATTERN)
    # …or a new credential value, stored as the secret ``integration.<name>`` (write-only).
    credential: str | None = Field(default=None, min_length=1, max_length=65536, pattern=r"^[^\x00]+$")
