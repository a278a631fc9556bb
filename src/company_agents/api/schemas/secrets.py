"""Secrets as the API and ``secret list --json`` show them: metadata only, never the value. The value
goes one way, in a request body (``SecretSet``, ``SecretRotate``), and is never echoed."""

from __future__ import annotations

from uuid import UUID

from pydantic import Field

from company_agents.api.schemas.common import Body, Public, UtcTime

# As secrets_store.NAME_RE: a letter or _, then letters, digits, _ . or - (at most 128).
SECRET_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$"
# A value is any non-empty text up to 64 KiB, NUL excepted (PostgreSQL text cannot hold it).
_VALUE = Field(min_length=1, max_length=65536, pattern=r"^[^\x00]+$")


class Secret(Public):
    id: UUID
    name: str
    description: str
    # The id of the master key it is encrypted under (which key, not the key).
    key_id: str
    created_at: UtcTime
    # When the value last changed (set or rotated).
    updated_at: UtcTime
    last_used_at: UtcTime | None


class SecretSet(Body):
    value: str = _VALUE
    description: str = Field(default="", max_length=500, pattern=r"^[^\x00]*$")


class SecretRotate(Body):
    value: str = _VALUE
