"""What a ``/v1`` route depends on: the database, the caller (``Principal``) and its scopes.

Every route declares one ``require(scope)``; a route on a company's objects also resolves the company
through ``company_for`` (or checks an object's company with ``check_company``), which answers 404 for
another company's objects under a company-scoped token, exactly as if they did not exist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

from fastapi import Depends, Path, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from company_agents.api.schemas.common import CURSOR_PATTERN, MAX_LIMIT
from company_agents.api.schemas.companies import SLUG_PATTERN
from company_agents.db.database import Database
from company_agents.errors import Forbidden, NotFound, Unauthorized

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from company_agents.settings import Settings

SCOPES = ("read", "write", "admin")

# The list routes' paging parameters. Here, not beside the cursor helpers in schemas.common: the
# CLI's --json output imports the schemas, and FastAPI is no part of a CLI read.
LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Items per page (1 to {MAX_LIMIT}).")]
CursorQuery = Annotated[
    str | None,
    Query(pattern=CURSOR_PATTERN, description="The `meta.nextCursor` of the previous page."),
]

_bearer = HTTPBearer(auto_error=False, description="An API token: `ca_dev_…` or `ca_prod_…` (token create).")


@dataclass(frozen=True)
class Principal:
    """The caller of a ``/v1`` route: an API token, never an agent."""

    token_id: UUID
    name: str
    scopes: tuple[str, ...]
    level: int  # 1 read, 2 write, 3 admin (api_tokens.LEVELS)
    company_id: UUID | None  # set when a company scope restricts the token
    created_at: datetime
    expires_at: datetime | None

    def allows(self, scope: str) -> bool:
        from company_agents.api_tokens import LEVELS

        return self.level >= LEVELS[scope]

    def sees(self, company_id: UUID | None) -> bool:
        """Whether an object of ``company_id`` exists for this caller."""
        return self.company_id is None or company_id == self.company_id


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller, when its token is live and grants ``scope`` (``read``, ``write`` or
    ``admin``); 401 without a usable token, 403 without the scope."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    async def dependency(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
    ) -> Principal:
        from company_agents import api_tokens

        if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
            raise Unauthorized("an API token is required: Authorization: Bearer ca_…")
        async with get_db(request).autocommit() as conn:
            grant = await api_tokens.authenticate(conn, credentials.credentials)
        principal = Principal(
            token_id=grant.token_id,
            name=grant.name,
            scopes=grant.scopes,
            level=grant.level,
            company_id=grant.company_id,
            created_at=grant.created_at,
            expires_at=grant.expires_at,
        )
        # The request log names the token by id (middleware.py); the token itself is never logged.
        request.state.token_id = str(principal.token_id)
        if not principal.allows(scope):
            raise Forbidden(f"this token lacks the {scope!r} scope", required=scope)
        return principal

    dependency.__name__ = f"require_{scope}"
    return dependency


def require_unrestricted(principal: Principal) -> None:
    """For actions above any one company (create a company, tokens): a company-scoped token gets 403."""
    if principal.company_id is not None:
        raise Forbidden("this token is restricted to one company", required="unrestricted")


async def company_for(conn: AsyncConnection, principal: Principal, company_ref: str) -> dict[str, Any]:
    """The company ``company_ref`` (id, prefix or slug) names, when the caller may see it; else the same
    ``NotFound`` a company that does not exist gets."""
    from company_agents import companies

    company = await companies.get_company(conn, company_ref)
    if not principal.sees(company["id"]):
        raise NotFound(f"no company {company_ref}", company=company_ref)
    return company


def check_company(principal: Principal, row: dict[str, Any], noun: str, ref: str) -> dict[str, Any]:
    """``row`` (a task, run, agent… with ``company_id``) when the caller may see it; else ``NotFound``."""
    if not principal.sees(row.get("company_id")):
        raise NotFound(f"no {noun} {ref}", **{noun: ref})
    return row


def actor_of(principal: Principal) -> str:
    """The audit actor of what a token does: a person (or their script), named by token id."""
    return f"user:token:{principal.token_id}"


# The parameter types every route module takes (one definition, not one per module).
Db = Annotated[Database, Depends(get_db)]
Reader = Annotated[Principal, Depends(require("read"))]
Writer = Annotated[Principal, Depends(require("write"))]
Admin = Annotated[Principal, Depends(require("admin"))]
CompanyRef = Annotated[str, Path(pattern=SLUG_PATTERN, description="The company's slug or id.")]
