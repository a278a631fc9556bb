"""``/v1/companies/{company}/integrations``: list (read), add and remove (admin: they create and
delete credential secrets). Credentials are write-only, as secrets are."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from company_agents.api.deps import (
    Admin,
    CompanyRef,
    Db,
    Reader,
    actor_of,
    company_for,
)
from company_agents.api.keys import master_key_of
from company_agents.api.middleware import request_id_of
from company_agents.api.schemas.common import Envelope, ListEnvelope, error_responses, one, page
from company_agents.api.schemas.integrations import INTEGRATION_NAME_PATTERN, Integration, IntegrationCreate

router = APIRouter(tags=["integrations"])

Name = Annotated[str, Path(pattern=INTEGRATION_NAME_PATTERN, description="The integration's name.")]


def _public(row: dict[str, Any]) -> Any:
    return Integration.of({**row, "credential_secret": row["secret_name"]})


@router.get(
    "/companies/{company}/integrations",
    operation_id="listIntegrations",
    response_model=ListEnvelope[Integration],
    responses=error_responses(403, 404),
)
async def list_integrations(request: Request, company: CompanyRef, principal: Reader, db: Db) -> Any:
    """The company's integrations by name (credentials by their secret's name only)."""
    from company_agents import integrations

    async with db.engine.connect() as conn:
        current = await company_for(conn, principal, company)
        rows = await integrations.list_integrations(conn, current["id"])
    return page(request_id_of(request), [_public(r) for r in rows], None)


@router.post(
    "/companies/{company}/integrations",
    operation_id="addIntegration",
    status_code=201,
    response_model=Envelope[Integration],
    responses=error_responses(403, 404, 409, 413),
)
async def add_integration(
    request: Request, company: CompanyRef, body: IntegrationCreate, principal: Admin, db: Db
) -> Any:
    """Add an integration, with an existing secret or a new credential as its credential."""
    from company_agents import integrations

    key = master_key_of(request) if body.credential is not None else None
    async with db.engine.begin() as conn:
        current = await company_for(conn, principal, company)
        row = await integrations.add_integration(
            conn,
            key,
            company_id=current["id"],
            kind=body.kind,
            name=body.name,
            config=body.config,
            scopes=body.scopes,
            secret_name=body.secret,
            credential=body.credential,
            actor=actor_of(principal),
        )
    return one(request_id_of(request), _public(row))


@router.delete(
    "/companies/{company}/integrations/{name}",
    operation_id="removeIntegration",
    response_model=Envelope[Integration],
    responses=error_responses(403, 404),
)
async def remove_integration(
    request: Request, company: CompanyRef, name: Name, principal: Admin, db: Db
) -> Any:
    """Remove an integration (and its own credential secret); answers what it was."""
    from company_agents import integrations

    async with db.engine.begin() as conn:
        current = await company_for(conn, principal, company)
        row = await integrations.get_integration(conn, current["id"], name)
        await integrations.remove_integration(
            conn, company_id=current["id"], name=name, actor=actor_of(principal)
        )
    return one(request_id_of(request), _public(row))
