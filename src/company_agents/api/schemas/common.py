"""The envelope, list metadata, the keyset cursor and the field types every public model shares.

Money is a string (``"12.3400"``), never a float; times are ISO 8601 in UTC (``…Z``); keys are camelCase.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, TypeVar
from uuid import UUID

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

from company_agents.errors import InvalidInput

T = TypeVar("T")

# Ten integer digits: what every money column stores (NUMERIC(14,4) and NUMERIC(18,8)).
MONEY_PATTERN = r"^-?[0-9]{1,10}(\.[0-9]{1,8})?$"
# A cursor is ``c_<microseconds since the epoch>_<uuid hex>``: every string the pattern admits decodes,
# so a schema-valid cursor is never refused (docs/api.md#pagination). 17 digits stay below year 9999.
CURSOR_PATTERN = r"^c_[0-9]{1,17}_[0-9a-f]{32}$"
_CURSOR = re.compile(CURSOR_PATTERN)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def _money(value: Any) -> Any:
    if isinstance(value, Decimal | int):
        return str(value)
    return value


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


Money = Annotated[str, BeforeValidator(_money), Field(pattern=MONEY_PATTERN, examples=["12.5000"])]
UtcTime = Annotated[datetime, AfterValidator(_utc)]


class Public(BaseModel):
    """Base of every public model: camelCase on the wire, snake_case in Python, unknown keys refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    @classmethod
    def of(cls, row: Any) -> Any:
        """The JSON form of a domain row (a dict): what the API answers and ``--json`` prints."""
        return cls.model_validate(row).model_dump(mode="json", by_alias=True)


class Body(BaseModel):
    """Base of request bodies: camelCase accepted (and snake_case), unknown keys refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Meta(Public):
    request_id: str
    timestamp: UtcTime


class ListMeta(Meta):
    next_cursor: str | None = None
    has_more: bool = False


class Envelope(Public, Generic[T]):
    data: T
    meta: Meta


class ListEnvelope(Public, Generic[T]):
    data: list[T]
    meta: ListMeta


class ErrorBody(Public):
    code: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)
    request_id: str | None = None


class ErrorEnvelope(Public):
    error: ErrorBody


def meta(request_id: str | None) -> dict[str, Any]:
    return {"requestId": request_id, "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z")}


def one(request_id: str | None, data: Any) -> dict[str, Any]:
    """``{"data": data, "meta": {"requestId", "timestamp"}}``: ``data`` is already JSON (``Public.of``)."""
    return {"data": data, "meta": meta(request_id)}


def page(request_id: str | None, items: list[Any], next_cursor: str | None) -> dict[str, Any]:
    return {
        "data": items,
        "meta": {**meta(request_id), "nextCursor": next_cursor, "hasMore": next_cursor is not None},
    }


def encode_cursor(at: datetime, key: UUID) -> str:
    """The cursor after the row ``(at, key)`` of a list ordered by ``(created_at, id)`` (either way)."""
    delta = _utc(at) - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return f"c_{micros}_{key.hex}"


def decode_cursor(cursor: str | None) -> tuple[datetime, UUID] | None:
    """``(created_at, id)`` of a cursor; ``InvalidInput`` for one the pattern refuses too."""
    if cursor is None:
        return None
    if not _CURSOR.match(cursor):
        raise InvalidInput("cursor is not one this API gave out", field="cursor")
    _, micros, key = cursor.split("_")
    from datetime import timedelta

    return _EPOCH + timedelta(microseconds=int(micros)), UUID(key)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for the error statuses a route declares (always 401 and 422)."""
    descriptions = {
        400: "Bad request",
        401: "Missing, unknown, revoked or expired token (or an agent's token)",
        403: "The token lacks the scope",
        404: "Not found (or another company's, under a company-scoped token)",
        409: "Conflicts with the current state",
        413: "Request body too large",
        422: "Invalid input",
        503: "Database unavailable",
    }
    wanted = sorted({401, 422, 503, *statuses})
    return {s: {"model": ErrorEnvelope, "description": descriptions[s]} for s in wanted}
