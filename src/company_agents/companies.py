"""Companies: create, look up, list, archive. Slugs are unique and permanent; archiving is soft."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import audit, ids
from company_agents.db.errors import translate
from company_agents.db.schema import companies, teams
from company_agents.db.schema.companies import FISCAL_PERIODS
from company_agents.errors import InvalidInput, NotFound
from company_agents.ids import resolve_id

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:48].strip("-")
    return slug or "company"


async def get_company(conn: AsyncConnection, ref: str | UUID) -> dict[str, Any]:
    """A company by slug, id or id prefix (``ids.resolve_id``); raises ``NotFound``."""
    key = await resolve_id(conn, ids.COMPANY, ref)
    row = (await conn.execute(select(companies).where(companies.c.id == key))).mappings().first()
    if row is None:
        raise NotFound(f"no company {ref!s}", company=str(ref))
    return dict(row)


async def _free_slug(conn: AsyncConnection, base: str) -> str:
    taken = set(
        (
            await conn.execute(
                select(companies.c.slug).where(
                    or_(companies.c.slug == base, companies.c.slug.like(f"{base}-%"))
                )
            )
        ).scalars()
    )
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


async def create_company(
    conn: AsyncConnection,
    *,
    name: str,
    slug: str | None = None,
    description: str = "",
    budget_usd: Decimal | None = None,
    fiscal_period: str = "monthly",
    team_names: list[str] | None = None,
    default_adapter: str | None = None,
    actor: str = audit.LOCAL_USER,
) -> dict[str, Any]:
    """Create a company (and its teams) with audit events; returns the company row."""
    name = name.strip()
    if not name:
        raise InvalidInput("a company needs a name", field="name")
    if fiscal_period not in FISCAL_PERIODS:
        raise InvalidInput(f"fiscal period must be one of {', '.join(FISCAL_PERIODS)}", field="fiscalPeriod")
    if budget_usd is not None and budget_usd < 0:
        raise InvalidInput("budget must not be negative", field="budget")
    if slug is not None:
        if not SLUG_RE.match(slug):
            raise InvalidInput(
                "slug must be lowercase letters, digits and dashes, starting with a letter or digit",
                field="slug",
            )
    else:
        slug = await _free_slug(conn, slugify(name))
    try:
        async with conn.begin_nested():
            row = (
                (
                    await conn.execute(
                        insert(companies)
                        .values(
                            slug=slug,
                            name=name,
                            description=description,
                            budget_usd=budget_usd,
                            fiscal_period=fiscal_period,
                            default_adapter=default_adapter,
                        )
                        .returning(companies)
                    )
                )
                .mappings()
                .one()
            )
    except IntegrityError as exc:
        raise translate(exc, slug=slug) from exc
    company = dict(row)
    await audit.record(
        conn,
        actor=actor,
        action="company.created",
        subject_type="company",
        subject_id=company["id"],
        company_id=company["id"],
        payload={"slug": slug, "name": name},
    )
    seen: set[str] = set()
    for team_name in team_names or []:
        team_name = team_name.strip()
        if not team_name or team_name.lower() in seen:
            continue
        seen.add(team_name.lower())
        team_id = (
            await conn.execute(
                insert(teams).values(company_id=company["id"], name=team_name).returning(teams.c.id)
            )
        ).scalar_one()
        await audit.record(
            conn,
            actor=actor,
            action="team.created",
            subject_type="team",
            subject_id=team_id,
            company_id=company["id"],
            payload={"name": team_name},
        )
    return company


async def list_companies(conn: AsyncConnection, *, include_archived: bool = False) -> list[dict[str, Any]]:
    query = select(companies).order_by(companies.c.created_at)
    if not include_archived:
        query = query.where(companies.c.status == "active")
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def archive_company(
    conn: AsyncConnection, ref: str, *, actor: str = audit.LOCAL_USER
) -> dict[str, Any]:
    """Archive (soft): agents stop taking tasks, nothing is deleted."""
    company = await get_company(conn, ref)
    if company["status"] == "archived":
        return company
    row = (
        (
            await conn.execute(
                update(companies)
                .where(companies.c.id == company["id"], companies.c.status == "active")
                .values(status="archived", archived_at=func.now(), updated_at=func.now())
                .returning(companies)
            )
        )
        .mappings()
        .one()
    )
    await audit.record(
        conn,
        actor=actor,
        action="company.archived",
        subject_type="company",
        subject_id=company["id"],
        company_id=company["id"],
        payload={"slug": company["slug"]},
    )
    return dict(row)


PATCHABLE = ("name", "description", "budget_usd", "fiscal_period", "default_adapter")


async def update_company(
    conn: AsyncConnection, ref: str | UUID, changes: dict[str, Any], *, actor: str = audit.LOCAL_USER
) -> dict[str, Any]:
    """Change the given fields (``PATCHABLE``; the slug is permanent); an audit event lists them."""
    company = await get_company(conn, ref)
    values = {k: v for k, v in changes.items() if k in PATCHABLE}
    if "name" in values:
        values["name"] = str(values["name"]).strip()
        if not values["name"]:
            raise InvalidInput("a company needs a name", field="name")
    if "fiscal_period" in values and values["fiscal_period"] not in FISCAL_PERIODS:
        raise InvalidInput(f"fiscal period must be one of {', '.join(FISCAL_PERIODS)}", field="fiscalPeriod")
    if values.get("budget_usd") is not None and Decimal(values["budget_usd"]) < 0:
        raise InvalidInput("budget must not be negative", field="budget")
    if not values:
        return company
    row = (
        (
            await conn.execute(
                update(companies)
                .where(companies.c.id == company["id"])
                .values(**values, updated_at=func.now())
                .returning(companies)
            )
        )
        .mappings()
        .one()
    )
    await audit.record(
        conn,
        actor=actor,
        action="company.updated",
        subject_type="company",
        subject_id=company["id"],
        company_id=company["id"],
        payload={k: str(v) if isinstance(v, Decimal) else v for k, v in values.items()},
    )
    return dict(row)
