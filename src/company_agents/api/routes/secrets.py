"""``/v1/companies/{company}/secrets`` (admin): metadata list, set, rotate, delete. A value travels
only in a request body and is never returned, logged or put in an error (docs/trust.md#secrets)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from company_agents.api.deps import Admin, CompanyRef, Db, actor_of, company_for
from company_agents.api.keys import master_key_of
from company_agents.api.middleware import request_id_of
from company_agents.api.schemas.common import Envelope, ListEnvelope, error_responses, one, page
from company_agents.api.schemas.secrets import SECRET_NAME_PATTERN, Secret, SecretRotate, SecretSet

router = APIRouter(tags=["secrets"])

Name = Annotated[str, Path(pattern=SECRET_NAME_PATTERN, description="The secret's name.")]


@router.get(
    "/companies/{company}/secrets",
    operation_id="listSecrets",
    response_model=ListEnvelope[Secret],
    responses=error_responses(403, 404),
)
async def list_secrets(request: Request, company: CompanyRef, principal: Admin, db: Db) -> Any:
    """The company's secrets by name: metadata only, never a value."""
    from company_agents import secrets_store

    async with db.engine.connect() as conn:
        current = await company_for(conn, principal, company)
        rows = await secrets_store.list_secrets(conn, current["id"])
    return page(request_id_of(request), [Secret.of(r) for r in rows], None)


@router.put(
    "/companies/{company}/secrets/{name}",
    operation_id="setSecret",
    response_model=Envelope[Secret],
    responses=error_responses(403, 404, 409, 413),
)
async def set_secret(
    request: Request, company: CompanyRef, name: Name, body: SecretSet, principal: Admin, db: Db
) -> Any:
    """Set a secret: create it, or give an existing one this value (as rotate does)."""
    from company_agents import secrets_store
    from company_agents.errors import NotFound

    key = master_key_of(request)
    async with db.engine.begin() as conn:
        current = await company_for(conn, principal, company)
        try:
            await secrets_store.get_secret(conn, current["id"], name)
        except NotFound:
            row = await secrets_store.create_secret(
                conn,
                key,
                company_id=current["id"],
                name=name,
                value=body.value,
                description=body.description,
                actor=actor_of(principal),
            )
        else:
            row = await secrets_store.rotate_secret(
                conn, key, company_id=current["id"], name=name, value=body.value, actor=actor_of(principal)
            )
    return one(request_id_of(request), Secret.of(row))


@router.post(
    "/companies/{company}/secrets/{name}/rotate",
    operation_id="rotateSecret",
    response_model=Envelope[Secret],
    responses=error_responses(403, 404, 413),
)
async def rotate_secret(
    request: Request, company: CompanyRef, name: Name, body: SecretRotate, principal: Admin, db: Db
) -> Any:
    """Replace an existing secret's value (a fresh nonce and ciphertext)."""
    from company_agents import secrets_store

    key = master_key_of(request)
    async with db.engine.begin() as conn:
        current = await company_for(conn, principal, company)
        row = await secrets_store.rotate_secret(
            conn, key, company_id=current["id"], name=name, value=body.value, actor=actor_of(principal)
        )
    return one(request_id_of(request), Secret.of(row))


@router.delete(
    "/companies/{company}/secrets/{name}",
    operation_id="deleteSecret",
    response_model=Envelope[Secret],
    responses=error_responses(403, 404, 409),
)
async def delete_secret(request: Request, company: CompanyRef, name: Name, principal: Admin, db: Db) -> Any:
    """Delete a secret (refused with 409 while an integration uses it); answers its last metadata."""
    from company_agents import secrets_store

    async with db.engine.begin() as conn:
        current = await company_for(conn, principal, company)
        row = await secrets_store.get_secret(conn, current["id"], name)
        await secrets_store.delete_secret(
            conn, company_id=current["id"], name=name, actor=actor_of(principal)
        )
    return one(request_id_of(request), Secret.of(row))
