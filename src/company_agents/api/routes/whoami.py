"""``GET /v1/whoami``: the calling token."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from company_agents.api.deps import Principal, require
from company_agents.api.middleware import request_id_of
from company_agents.api.schemas.common import Envelope, error_responses, one
from company_agents.api.schemas.tokens import WhoAmI

router = APIRouter(tags=["whoami"])


@router.get(
    "/whoami",
    operation_id="whoami",
    response_model=Envelope[WhoAmI],
    responses=error_responses(),
)
async def whoami(request: Request, principal: Annotated[Principal, Depends(require("read"))]) -> Any:
    """The token this request carries: its id, name, scopes, company and expiry."""
    return one(
        request_id_of(request),
        WhoAmI.of(
            {
                "token_id": principal.token_id,
                "name": principal.name,
                "scopes": list(principal.scopes),
                "company_id": principal.company_id,
                "created_at": principal.created_at,
                "expires_at": principal.expires_at,
            }
        ),
    )
