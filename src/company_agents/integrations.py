"""Integrations: a company's connections to outside services (GitHub, Slack, HTTP APIs …).

An integration holds non-secret config and scopes; its credential lives in the secret store and is
referenced by id (same company, enforced by a composite foreign key). Listing shows metadata only.
"""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import audit, secrets_store
from company_agents.db.errors import translate
from company_agents.db.schema import integrations, secrets
from company_agents.errors import Conflict, InvalidInput, NotFound
from company_agents.master_key import MasterKey

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
KIND_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
# Config is stored and shown in clear: refuse keys that look like credentials.
SECRETISH_KEY = re.compile(r"(token|secret|passw|api[_-]?key|credential|private[_-]?key)", re.I)


def credential_secret_name(name: str) -> str:
    """The secret an integration's own credential is stored under."""
    return f"integration.{name}"


def _check_config(config: Any, path: str = "config") -> None:
    if isinstance(config, str) and "\x00" in config:
        raise InvalidInput(f"{path} holds a NUL character, which JSON in the database cannot", field=path)
    if isinstance(config, dict):
        for key, value in config.items():
            if "\x00" in str(key):
                raise InvalidInput(f"a key of {path} holds a NUL character", field=path)
            if SECRETISH_KEY.search(str(key)):
                raise InvalidInput(
                    f"{path}.{key} looks like a credential: store it with --credential-stdin or --secret",
                    field=f"{path}.{key}",
                )
            _check_config(value, f"{path}.{key}")
    elif isinstance(config, list):
        for i, value in enumerate(config):
            _check_config(value, f"{path}[{i}]")


def _select_public() -> Any:
    return select(
        integrations.c.id,
        integrations.c.company_id,
        integrations.c.kind,
        integrations.c.name,
        integrations.c.config,
        integrations.c.scopes,
        integrations.c.status,
        integrations.c.created_at,
        integrations.c.updated_at,
        integrations.c.last_used_at,
        integrations.c.secret_id,
        secrets.c.name.label("secret_name"),
    ).select_from(integrations.outerjoin(secrets, secrets.c.id == integrations.c.secret_id))


async def get_integration(conn: AsyncConnection, company_id: UUID, name: str) -> dict[str, Any]:
    query = _select_public().where(integrations.c.company_id == company_id, integrations.c.name == name)
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise NotFound(f"no integration {name!r} in this company", name=name)
    return dict(row)


async def list_integrations(conn: AsyncConnection, company_id: UUID) -> list[dict[str, Any]]:
    query = _select_public().where(integrations.c.company_id == company_id).order_by(integrations.c.name)
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def add_integration(
    conn: AsyncConnection,
    master_key: MasterKey | None,
    *,
    company_id: UUID,
    kind: str,
    name: str,
    config: dict[str, Any] | None = None,
    scopes: list[str] | None = None,
    secret_name: str | None = None,
    credential: str | None = None,
    actor: str = audit.LOCAL_USER,
) -> dict[str, Any]:
    """Add an integration; its credential is an existing secret (``secret_name``) or a new value
    (``credential``, stored as the secret ``integration.<name>``; needs ``master_key``). Returns its
    metadata.
    """
    if not KIND_RE.match(kind):
        raise InvalidInput(
            "kind is lowercase letters, digits, _ or - (e.g. github, slack, http)", field="kind"
        )
    if not NAME_RE.match(name):
        raise InvalidInput("name is letters, digits, _ . or -, at most 64", field="name")
    if secret_name is not None and credential is not None:
        raise InvalidInput("give either an existing secret or a new credential, not both", field="secret")
    config = config or {}
    if not isinstance(config, dict):
        raise InvalidInput("config must be a JSON object", field="config")
    _check_config(config)
    scopes = [s.strip() for s in scopes or [] if s.strip()]
    secret_id: UUID | None = None
    if credential is not None:
        if master_key is None:
            raise InvalidInput("storing a credential needs the master key", field="credential")
        created = await secrets_store.create_secret(
            conn,
            master_key,
            company_id=company_id,
            name=credential_secret_name(name),
            value=credential,
            description=f"credential of the {kind} integration {name}",
            actor=actor,
        )
        secret_id = created["id"]
    elif secret_name is not None:
        secret_id = (await secrets_store.get_secret(conn, company_id, secret_name))["id"]
    try:
        async with conn.begin_nested():
            integration_id = (
                await conn.execute(
                    insert(integrations)
                    .values(
                        company_id=company_id,
                        kind=kind,
                        name=name,
                        config=config,
                        scopes=scopes,
                        secret_id=secret_id,
                    )
                    .returning(integrations.c.id)
                )
            ).scalar_one()
    except IntegrityError as exc:
        raise translate(exc, name=name) from exc
    await audit.record(
        conn,
        actor=actor,
        action="integration.added",
        subject_type="integration",
        subject_id=integration_id,
        company_id=company_id,
        payload={"kind": kind, "name": name, "scopes": scopes, "hasCredential": secret_id is not None},
    )
    return await get_integration(conn, company_id, name)


async def remove_integration(
    conn: AsyncConnection, *, company_id: UUID, name: str, actor: str = audit.LOCAL_USER
) -> None:
    """Remove an integration, and its own credential secret (one created for it and used by no other)."""
    row = (
        await conn.execute(
            delete(integrations)
            .where(integrations.c.company_id == company_id, integrations.c.name == name)
            .returning(integrations.c.id, integrations.c.kind, integrations.c.secret_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"no integration {name!r} in this company", name=name)
    if row.secret_id is not None:
        own = credential_secret_name(name)
        still_used = (
            await conn.execute(select(func.count()).where(integrations.c.secret_id == row.secret_id))
        ).scalar_one()
        secret = (
            await conn.execute(select(secrets.c.name).where(secrets.c.id == row.secret_id))
        ).scalar_one_or_none()
        if secret == own and not still_used:
            await secrets_store.delete_secret(conn, company_id=company_id, name=own, actor=actor)
    await audit.record(
        conn,
        actor=actor,
        action="integration.removed",
        subject_type="integration",
        subject_id=row.id,
        company_id=company_id,
        payload={"kind": row.kind, "name": name},
    )


async def use_credential(conn: AsyncConnection, master_key: MasterKey, company_id: UUID, name: str) -> str:
    """Decrypt an integration's credential for immediate use; stamps ``last_used_at`` on both rows."""
    row = (
        await conn.execute(
            update(integrations)
            .where(integrations.c.company_id == company_id, integrations.c.name == name)
            .values(last_used_at=func.now())
            .returning(integrations.c.secret_id, integrations.c.status)
        )
    ).first()
    if row is None:
        raise NotFound(f"no integration {name!r} in this company", name=name)
    if row.status != "active":
        raise Conflict(f"integration {name!r} is {row.status}", name=name)
    if row.secret_id is None:
        raise NotFound(f"integration {name!r} has no credential", name=name)
    return await secrets_store.reveal_id(conn, master_key, company_id, row.secret_id)
