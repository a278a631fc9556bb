"""``/v1/tokens`` (admin, and not restricted to one company): list, create, rotate and revoke API tokens,
as ``token list|create|rotate|revoke`` do. A token is shown once, by create or rotate; the database
keeps its hash."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request

from company_agents.api.deps import Db, Principal, actor_of, require, require_unrestricted
from company_agents.api.middleware import request_id_of
from company_agents.api.schemas.common import Envelope, ListEnvelope, error_responses, one, page
from company_agents.api.schemas.tokens import ApiToken, ApiTokenCreated, TokenCreate

router = APIRouter(tags=["tokens"])


async def _admin(principal: Annotated[Principal, Depends(require("admin"))]) -> Principal:
    # Tokens are above any one company: a company-scoped admin token must not mint wider ones.
    require_unrestricted(principal)
    return principal


Admin = Annotated[Principal, Depends(_admin)]


def _created(row: dict[str, Any], token: str) -> Any:
    return ApiTokenCreated.of({**row, "token": token})


@router.get(
    "/tokens",
    operation_id="listTokens",
    response_model=ListEnvelope[ApiToken],
    responses=error_responses(403),
    dependencies=[Depends(_admin)],
)
async def list_tokens(
    request: Request,
    db: Db,
    include_revoked: Annotated[bool, Query(alias="includeRevoked", description="Revoked ones too.")] = False,
) -> Any:
    """Every API token, oldest first (never a token or its hash)."""
    from company_agents import api_tokens

    async with db.engine.connect() as conn:
        rows = await api_tokens.list_tokens(conn, include_revoked=include_revoked)
    return page(request_id_of(request), [ApiToken.of(r) for r in rows], None)


@router.post(
    "/tokens",
    operation_id="createToken",
    status_code=201,
    response_model=Envelope[ApiTokenCreated],
    responses=error_responses(403, 404, 413),
)
async def create_token(request: Request, body: TokenCreate, principal: Admin, db: Db) -> Any:
    """Create a token, shown once in the answer (an `expiresAt` already past makes one that
    never works, as `token create --expires` does)."""
    from company_agents import api_tokens, companies

    async with db.engine.begin() as conn:
        company_id = (await companies.get_company(conn, body.company))["id"] if body.company else None
        row, token = await api_tokens.create_token(
            conn,
            name=body.name,
            scopes=body.scopes,
            company_id=company_id,
            env=body.env,
            expires_at=body.expires_at,
            actor=actor_of(principal),
        )
    return one(request_id_of(request), _created(row, token))


@router.post(
    "/tokens/{token_id}/rotate",
    operation_id="rotateToken",
    response_model=Envelope[ApiTokenCreated],
    responses=error_responses(403, 404),
)
async def rotate_token(request: Request, token_id: UUID, principal: Admin, db: Db) -> Any:
    """A new secret for the same token (same id and scopes); the old one stops at once."""
    from company_agents import api_tokens

    async with db.engine.begin() as conn:
        row, token = await api_tokens.rotate_token(conn, token_id, actor=actor_of(principal))
    return one(request_id_of(request), _created(row, token))


@router.post(
    "/tokens/{token_id}/revoke",
    operation_id="revokeToken",
    response_model=Envelope[ApiToken],
    responses=error_responses(403, 404),
)
async def revoke_token(request: Request, token_id: UUID, principal: Admin, db: Db) -> Any:
    """Revoke a token (it stops at once; revoking twice is harmless)."""
    from company_agents import api_tokens

    async with db.engine.begin() as conn:
        row = await api_tokens.revoke_token(conn, token_id, actor=actor_of(principal))
    return one(request_id_of(request), ApiToken.of(row))
