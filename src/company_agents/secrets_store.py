"""The secret store: company-scoped values, AES-256-GCM encrypted, decrypted only at the moment of use.

Invariants:

- Every row is encrypted under the database's master key (``key_id``, recorded in ``database_key``);
  master-key rotation re-encrypts all of them in one transaction. Writers take a shared advisory lock
  and rotation an exclusive one, so no value is ever written under a key the rotation has just retired.
- The associated data binds each ciphertext to ``(company_id, name)``: a row copied to another company
  (or renamed) fails to decrypt, and every query filters on ``company_id`` as well.
- Values never appear in exceptions, logs, audit payloads or return values other than ``reveal``.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from typing import Any, LiteralString
from uuid import UUID

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import audit, crypto
from company_agents.adapters.env_policy import refuse_reserved
from company_agents.db import locks
from company_agents.db.errors import translate
from company_agents.db.schema import secrets
from company_agents.errors import InvalidInput, MasterKeyMismatch, NotFound
from company_agents.master_key import MasterKey
from company_agents.master_key.owner import owner_mismatch

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")
# Shared by secret writers, exclusive for master-key rotation.
SECRETS_KEY_LOCK = locks.SECRETS_KEY
MASTER_KEY_ROTATED = "master_key.rotated"

# The key the database belongs to (docs/deployment.md): its record, else (a database whose record was
# never made, e.g. restored from before migration 0015 into a table-less state) any secret's key.
DATABASE_KEY_ID_SQL: LiteralString = """
SELECT coalesce((SELECT key_id FROM database_key WHERE id = 1), (SELECT key_id FROM secrets LIMIT 1))
"""
# The first key used with a database becomes its owner (``master_key.owner``).
CLAIM_DATABASE_KEY_SQL: LiteralString = """
INSERT INTO database_key (id, key_id, recorded_by) VALUES (1, :key_id, :host)
ON CONFLICT (id) DO NOTHING
"""

METADATA_COLUMNS = (
    secrets.c.id,
    secrets.c.company_id,
    secrets.c.name,
    secrets.c.description,
    secrets.c.key_id,
    secrets.c.created_at,
    secrets.c.updated_at,
    secrets.c.last_used_at,
)


def mismatch_error(master_key: MasterKey, database_key_id: str) -> MasterKeyMismatch:
    return owner_mismatch(master_key, database_key_id)


async def database_key_id(conn: AsyncConnection) -> str | None:
    """The key id the database belongs to, or None when no key was ever used with it."""
    value = (await conn.execute(text(DATABASE_KEY_ID_SQL))).scalar_one()
    return None if value is None else str(value)


async def check_master_key(conn: AsyncConnection, master_key: MasterKey) -> None:
    """Raise ``MasterKeyMismatch`` unless ``master_key`` is the database's key; the first key used with
    a database (in this transaction) becomes its key."""
    await conn.execute(
        text(CLAIM_DATABASE_KEY_SQL), {"key_id": master_key.key_id, "host": socket.gethostname()}
    )
    current = await database_key_id(conn)
    if current is not None and current != master_key.key_id:
        raise mismatch_error(master_key, current)


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise InvalidInput(
            "a secret name is a letter or _, then letters, digits, _ . or - (at most 128)", field="name"
        )
    return name


def _check_value(value: str) -> bytes:
    if not value:
        raise InvalidInput("a secret value must not be empty", field="value")
    try:
        return value.encode()
    except UnicodeEncodeError:  # a lone surrogate: not text any program could use
        raise InvalidInput("a secret value must be valid Unicode text", field="value") from None


async def _lock_for_write(conn: AsyncConnection, master_key: MasterKey) -> None:
    await conn.execute(select(func.pg_advisory_xact_lock_shared(SECRETS_KEY_LOCK)))
    await check_master_key(conn, master_key)


async def get_secret(conn: AsyncConnection, company_id: UUID, name: str) -> dict[str, Any]:
    """A secret's metadata (never its value); raises ``NotFound``."""
    row = (
        (
            await conn.execute(
                select(*METADATA_COLUMNS).where(secrets.c.company_id == company_id, secrets.c.name == name)
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"no secret {name!r} in this company", name=name)
    return dict(row)


async def list_secrets(conn: AsyncConnection, company_id: UUID) -> list[dict[str, Any]]:
    """Metadata of a company's secrets, by name."""
    query = select(*METADATA_COLUMNS).where(secrets.c.company_id == company_id).order_by(secrets.c.name)
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def create_secret(
    conn: AsyncConnection,
    master_key: MasterKey,
    *,
    company_id: UUID,
    name: str,
    value: str,
    description: str = "",
    actor: str = audit.LOCAL_USER,
) -> dict[str, Any]:
    """Store a new secret; raises ``Conflict`` when the name is taken. Returns its metadata."""
    check_name(name)
    plaintext = _check_value(value)
    await _lock_for_write(conn, master_key)
    nonce, ciphertext = crypto.encrypt(master_key, plaintext, crypto.secret_aad(company_id, name))
    try:
        async with conn.begin_nested():
            row = (
                (
                    await conn.execute(
                        insert(secrets)
                        .values(
                            company_id=company_id,
                            name=name,
                            value=ciphertext,
                            nonce=nonce,
                            key_id=master_key.key_id,
                            description=description,
                        )
                        .returning(*METADATA_COLUMNS)
                    )
                )
                .mappings()
                .one()
            )
    except IntegrityError as exc:
        raise translate(exc, name=name) from exc
    await audit.record(
        conn,
        actor=actor,
        action="secret.created",
        subject_type="secret",
        subject_id=row["id"],
        company_id=company_id,
        payload={"name": name},
    )
    return dict(row)


async def rotate_secret(
    conn: AsyncConnection,
    master_key: MasterKey,
    *,
    company_id: UUID,
    name: str,
    value: str,
    actor: str = audit.LOCAL_USER,
) -> dict[str, Any]:
    """Replace a secret's value (new ciphertext, fresh nonce). Returns its metadata."""
    plaintext = _check_value(value)
    await _lock_for_write(conn, master_key)
    nonce, ciphertext = crypto.encrypt(master_key, plaintext, crypto.secret_aad(company_id, name))
    row = (
        (
            await conn.execute(
                update(secrets)
                .where(secrets.c.company_id == company_id, secrets.c.name == name)
                .values(value=ciphertext, nonce=nonce, key_id=master_key.key_id, updated_at=func.now())
                .returning(*METADATA_COLUMNS)
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"no secret {name!r} in this company", name=name)
    await audit.record(
        conn,
        actor=actor,
        action="secret.rotated",
        subject_type="secret",
        subject_id=row["id"],
        company_id=company_id,
        payload={"name": name},
    )
    return dict(row)


async def delete_secret(
    conn: AsyncConnection, *, company_id: UUID, name: str, actor: str = audit.LOCAL_USER
) -> None:
    """Delete a secret; refused (``Conflict``) while an integration uses it."""
    try:
        async with conn.begin_nested():
            secret_id = (
                await conn.execute(
                    delete(secrets)
                    .where(secrets.c.company_id == company_id, secrets.c.name == name)
                    .returning(secrets.c.id)
                )
            ).scalar_one_or_none()
    except IntegrityError as exc:
        raise translate(exc, name=name) from exc
    if secret_id is None:
        raise NotFound(f"no secret {name!r} in this company", name=name)
    await audit.record(
        conn,
        actor=actor,
        action="secret.deleted",
        subject_type="secret",
        subject_id=secret_id,
        company_id=company_id,
        payload={"name": name},
    )


async def _reveal_where(
    conn: AsyncConnection, master_key: MasterKey, company_id: UUID, *conditions: Any
) -> tuple[UUID, str]:
    # The company filter is part of every lookup: a company can only ever reach its own rows.
    row = (
        await conn.execute(
            update(secrets)
            .where(secrets.c.company_id == company_id, *conditions)
            .values(last_used_at=func.now())
            .returning(secrets.c.id, secrets.c.name, secrets.c.value, secrets.c.nonce, secrets.c.key_id)
        )
    ).first()
    if row is None:
        raise NotFound("no such secret in this company")
    if row.key_id != master_key.key_id:
        raise mismatch_error(master_key, row.key_id)
    plaintext = crypto.decrypt(master_key, row.nonce, row.value, crypto.secret_aad(company_id, row.name))
    return row.id, plaintext.decode()


async def reveal(conn: AsyncConnection, master_key: MasterKey, company_id: UUID, name: str) -> str:
    """Decrypt a secret for immediate use and stamp ``last_used_at``. Never log or return the result."""
    _, value = await _reveal_where(conn, master_key, company_id, secrets.c.name == name)
    return value


async def reveal_id(conn: AsyncConnection, master_key: MasterKey, company_id: UUID, secret_id: UUID) -> str:
    """``reveal`` by id (integrations refer to their credential by id)."""
    _, value = await _reveal_where(conn, master_key, company_id, secrets.c.id == secret_id)
    return value


async def resolve_env(
    conn: AsyncConnection, master_key: MasterKey, company_id: UUID, env: Mapping[str, object]
) -> dict[str, str]:
    """An agent process environment with secret references replaced by their values.

    ``env`` maps variable names to literal strings or ``{"secret": "NAME"}`` references (as in an agent's
    ``adapter_config["env"]``), e.g. ``{"ANTHROPIC_API_KEY": {"secret": "anthropic_api_key"}}``.
    The result must only be handed to the child process, never logged or stored.
    """
    resolved: dict[str, str] = {}
    if refused := refuse_reserved(set(env)):
        raise InvalidInput(f"an agent's environment may not set {', '.join(refused)}", field="env")
    for var, spec in env.items():
        if isinstance(spec, str):
            resolved[var] = spec
        elif isinstance(spec, Mapping) and isinstance(spec.get("secret"), str):
            resolved[var] = await reveal(conn, master_key, company_id, spec["secret"])
        else:
            raise InvalidInput(f"env {var}: expected a string or {{'secret': NAME}}", field=var)
    return resolved
