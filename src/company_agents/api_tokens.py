"""API tokens for ``/v1``: made here, shown once, stored only as their SHA-256 (docs/api.md).

A token reads ``ca_<env>_<32 hex>``. Its scopes are ``read``, ``write``, ``admin`` and at most one
company's ``company:<id>``, ``company:<id>:read`` or ``company:<id>:write``. A company scope restricts
the token to that company; within it the token may do what its scopes together grant. Agents never hold
one of these: their lease (``lt_``) and identity (``at_``) tokens are refused by ``/v1``.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import audit
from company_agents.db.schema import api_tokens, companies
from company_agents.db.schema.api_tokens import TOKEN_ENVS
from company_agents.errors import InvalidInput, NotFound, Unauthorized
from company_agents.tokens import AGENT_TOKEN_PREFIX, LEASE_TOKEN_PREFIX, hash_token

TOKEN_RE = re.compile(r"^ca_(dev|prod)_[0-9a-f]{32}$")
GLOBAL_SCOPES = ("read", "write", "admin")
_COMPANY_SCOPE = re.compile(r"^company:([0-9a-f-]{36})(?::(read|write))?$")
# What each level allows; a higher level includes the lower ones.
LEVELS = {"read": 1, "write": 2, "admin": 3}
# last_used_at is written at most this often per token, so reads do not each cost a write.
LAST_USED_RESOLUTION_SECONDS = 60
HINT_LEN = 12


@dataclass(frozen=True)
class Grant:
    """What a token may do: ``level`` everywhere it may act, ``company_id`` when restricted to one."""

    token_id: UUID
    name: str
    scopes: tuple[str, ...]
    level: int
    company_id: UUID | None
    created_at: datetime
    expires_at: datetime | None


def new_api_token(env: str) -> str:
    return f"ca_{env}_{secrets.token_hex(16)}"


def parse_scopes(scopes: list[str], company_id: UUID | None = None) -> tuple[list[str], UUID | None]:
    """Normalised scopes and the company they restrict to; ``company_id`` (from ``--company``) adds
    ``company:<id>``. Raises ``InvalidInput`` on an unknown scope or two companies."""
    out: list[str] = []
    company: UUID | None = company_id
    for raw in scopes:
        scope = raw.strip().lower()
        if not scope:
            continue
        match = _COMPANY_SCOPE.match(scope)
        if scope in GLOBAL_SCOPES:
            pass
        elif match:
            try:
                scoped = UUID(match.group(1))
            except ValueError as exc:
                raise InvalidInput(f"unknown scope {raw!r}", field="scopes") from exc
            if company is not None and scoped != company:
                raise InvalidInput("a token is restricted to one company at most", field="scopes")
            company = scoped
            scope = f"company:{scoped}" + (f":{match.group(2)}" if match.group(2) else "")
        else:
            raise InvalidInput(
                f"unknown scope {raw!r}: use read, write, admin, company:<id>[:read|:write]", field="scopes"
            )
        if scope not in out:
            out.append(scope)
    if company is not None and not any(s.startswith("company:") for s in out):
        out.append(f"company:{company}")
    if not out:
        raise InvalidInput("a token needs at least one scope", field="scopes")
    return out, company


def level_of(scopes: tuple[str, ...] | list[str]) -> int:
    level = 0
    for scope in scopes:
        if scope in LEVELS:
            level = max(level, LEVELS[scope])
        elif scope.startswith("company:"):
            # company:<id> alone acts in that company (read and write); :read and :write say which.
            suffix = scope.rsplit(":", 1)[-1] if scope.count(":") == 2 else "write"
            level = max(level, LEVELS[suffix])
    return level


async def create_token(
    conn: AsyncConnection,
    *,
    name: str,
    scopes: list[str],
    company_id: UUID | None = None,
    env: str = "dev",
    expires_at: datetime | None = None,
    actor: str = audit.LOCAL_USER,
) -> tuple[dict[str, Any], str]:
    """A new token: its row and the token itself (shown once, never stored)."""
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("a token needs a name of 1 to 200 characters", field="name")
    if env not in TOKEN_ENVS:
        raise InvalidInput(f"env must be one of {', '.join(TOKEN_ENVS)}", field="env")
    normalised, company = parse_scopes(scopes, company_id)
    if (
        company is not None
        and (await conn.execute(select(companies.c.id).where(companies.c.id == company))).first() is None
    ):
        # Answered here, not by the foreign key (a crash): the company a scope names does not exist.
        raise NotFound(f"no company {company} for the scope company:{company}", company=str(company))
    token = new_api_token(env)
    row = (
        (
            await conn.execute(
                insert(api_tokens)
                .values(
                    name=name,
                    env=env,
                    token_hash=hash_token(token),
                    hint=token[:HINT_LEN],
                    scopes=normalised,
                    company_id=company,
                    created_by=actor,
                    expires_at=expires_at,
                )
                .returning(api_tokens)
            )
        )
        .mappings()
        .one()
    )
    await audit.record(
        conn,
        actor=actor,
        action="api_token.created",
        subject_type="api_token",
        subject_id=row["id"],
        company_id=company,
        payload={"name": name, "scopes": normalised},
    )
    return dict(row), token


async def list_tokens(conn: AsyncConnection, *, include_revoked: bool = False) -> list[dict[str, Any]]:
    query = select(api_tokens).order_by(api_tokens.c.created_at, api_tokens.c.id)
    if not include_revoked:
        query = query.where(api_tokens.c.revoked_at.is_(None))
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def get_token(conn: AsyncConnection, ref: str | UUID) -> dict[str, Any]:
    """A token by id or unique id prefix (at least 6 hex digits), or by its name."""
    text_ref = str(ref).strip().lower()
    if text_ref.startswith("tok_"):
        text_ref = text_ref[4:]
    digits = text_ref.replace("-", "")
    where = api_tokens.c.name == str(ref)
    if re.fullmatch(r"[0-9a-f]{6,32}", digits):
        low = UUID(digits.ljust(32, "0"))
        high = UUID(digits.ljust(32, "f"))
        where = or_(where, api_tokens.c.id.between(low, high))
    rows = (await conn.execute(select(api_tokens).where(where).limit(2))).mappings().all()
    if not rows:
        raise NotFound(f"no API token {ref!s}", token=str(ref))
    if len(rows) > 1:
        raise InvalidInput(f"{ref!s} matches several tokens; give more of the id", field="id")
    return dict(rows[0])


async def rotate_token(
    conn: AsyncConnection, ref: str | UUID, *, actor: str = audit.LOCAL_USER
) -> tuple[dict[str, Any], str]:
    """A new secret for the same token id (the old one stops working at once); returned once."""
    row = await get_token(conn, ref)
    if row["revoked_at"] is not None:
        raise InvalidInput("that token is revoked; create a new one", field="id")
    token = new_api_token(row["env"])
    updated = (
        (
            await conn.execute(
                update(api_tokens)
                .where(api_tokens.c.id == row["id"])
                .values(token_hash=hash_token(token), hint=token[:HINT_LEN], rotated_at=func.now())
                .returning(api_tokens)
            )
        )
        .mappings()
        .one()
    )
    await audit.record(
        conn,
        actor=actor,
        action="api_token.rotated",
        subject_type="api_token",
        subject_id=row["id"],
        company_id=row["company_id"],
        payload={"name": row["name"]},
    )
    return dict(updated), token


async def revoke_token(
    conn: AsyncConnection, ref: str | UUID, *, actor: str = audit.LOCAL_USER
) -> dict[str, Any]:
    row = await get_token(conn, ref)
    if row["revoked_at"] is not None:
        return row
    updated = (
        (
            await conn.execute(
                update(api_tokens)
                .where(api_tokens.c.id == row["id"])
                .values(revoked_at=func.now())
                .returning(api_tokens)
            )
        )
        .mappings()
        .one()
    )
    await audit.record(
        conn,
        actor=actor,
        action="api_token.revoked",
        subject_type="api_token",
        subject_id=row["id"],
        company_id=row["company_id"],
        payload={"name": row["name"]},
    )
    return dict(updated)


async def any_active_token(conn: AsyncConnection) -> bool:
    """Whether some token could authenticate (the non-loopback bind rule needs one)."""
    query = select(api_tokens.c.id).where(
        api_tokens.c.revoked_at.is_(None),
        or_(api_tokens.c.expires_at.is_(None), api_tokens.c.expires_at > func.now()),
    )
    return (await conn.execute(query.limit(1))).first() is not None


async def authenticate(conn: AsyncConnection, token: str) -> Grant:
    """The grant of a bearer token; ``Unauthorized`` for anything but a live API token.

    An agent's lease or identity token is refused here by its prefix, before any lookup: an agent must
    not act through the API (it would approve its own work).
    """
    if token.startswith((LEASE_TOKEN_PREFIX, AGENT_TOKEN_PREFIX)):
        raise Unauthorized("agent tokens are not accepted by the API; use an API token (token create)")
    if not TOKEN_RE.match(token):
        raise Unauthorized("not an API token")
    # One round trip for the common case: the row, and whether last_used_at is due for a write.
    due = or_(
        api_tokens.c.last_used_at.is_(None),
        api_tokens.c.last_used_at < func.now() - text(f"interval '{LAST_USED_RESOLUTION_SECONDS} seconds'"),
    ).label("last_used_due")
    row = (
        (
            await conn.execute(
                select(api_tokens, due).where(
                    api_tokens.c.token_hash == hash_token(token),
                    api_tokens.c.revoked_at.is_(None),
                    or_(api_tokens.c.expires_at.is_(None), api_tokens.c.expires_at > func.now()),
                )
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise Unauthorized("unknown, revoked or expired API token")
    if row["last_used_due"]:
        await conn.execute(
            update(api_tokens).where(api_tokens.c.id == row["id"]).values(last_used_at=func.now())
        )
    scopes = tuple(row["scopes"])
    return Grant(
        token_id=row["id"],
        name=row["name"],
        scopes=scopes,
        level=level_of(scopes),
        company_id=row["company_id"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
    )
