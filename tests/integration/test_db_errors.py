"""Driver errors become our errors by constraint name (``db.errors.translate``), on real PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import delete, insert, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from company_agents import agents, companies, integrations, secrets_store
from company_agents.db.database import sqlalchemy_url
from company_agents.db.errors import translate
from company_agents.db.schema import agents as agents_table
from company_agents.db.schema import companies as companies_table
from company_agents.db.schema import teams as teams_table
from company_agents.errors import (
    CompanyAgentsError,
    Conflict,
    InvalidInput,
    NotFound,
    SchemaOutOfDate,
)
from company_agents.master_key import MasterKey

KEY = MasterKey(os.urandom(32), "test")


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(sqlalchemy_url(db_url), poolclass=NullPool)
    yield eng
    await eng.dispose()


async def _company(engine: AsyncEngine, name: str = "Acme") -> UUID:
    async with engine.begin() as conn:
        company = await companies.create_company(conn, name=name, team_names=["Engineering"])
    return UUID(str(company["id"]))


async def _raises(
    engine: AsyncEngine, work: Callable[[AsyncConnection], Awaitable[Any]]
) -> CompanyAgentsError:
    with pytest.raises(CompanyAgentsError) as info:
        async with engine.begin() as conn:
            await work(conn)
    return info.value


def _one_clean_line(error: CompanyAgentsError) -> None:
    assert "\n" not in error.message
    for leak in ("INSERT", "DELETE", "SELECT", "[parameters", "%("):
        assert leak not in error.message, error.message


async def test_duplicates_say_exactly_what_is_taken(engine: AsyncEngine) -> None:
    company_id = await _company(engine)
    async with engine.begin() as conn:
        await agents.hire_agent(conn, company="acme", name="ada", role="dev", adapter="process")
        await secrets_store.create_secret(conn, KEY, company_id=company_id, name="tok", value="v1")
        await integrations.add_integration(conn, None, company_id=company_id, kind="github", name="gh")

    cases: list[tuple[Callable[[AsyncConnection], Awaitable[Any]], str, dict[str, str]]] = [
        (lambda c: companies.create_company(c, name="Other", slug="acme"), "the slug 'acme' is taken", {}),
        (
            lambda c: agents.create_team(c, company="acme", name="Engineering"),
            "the company already has a team named 'Engineering'",
            {"name": "Engineering"},
        ),
        (
            lambda c: agents.hire_agent(c, company="acme", name="ada", role="dev", adapter="process"),
            "the company already has an agent named 'ada'",
            {"name": "ada"},
        ),
        (
            lambda c: secrets_store.create_secret(c, KEY, company_id=company_id, name="tok", value="v2"),
            "a secret named 'tok' exists",
            {"name": "tok"},
        ),
        (
            lambda c: integrations.add_integration(c, None, company_id=company_id, kind="github", name="gh"),
            "an integration named 'gh' exists",
            {"name": "gh"},
        ),
    ]
    for work, message, details in cases:
        error = await _raises(engine, work)
        assert type(error) is Conflict and error.message.startswith(message), error.message
        assert error.details.items() >= details.items()
        _one_clean_line(error)
    slug_error = await _raises(engine, cases[0][0])
    assert slug_error.details["field"] == "slug"
    assert slug_error.details["constraint"] == "uq_companies_slug"


# A rule the product does not know about: each site must report it as itself, not as "name taken".
EXTRA_RULE = "zz_not_forbidden"


async def _forbid_name(engine: AsyncEngine, table: str, column: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(f"ALTER TABLE {table} ADD CONSTRAINT {EXTRA_RULE} CHECK ({column} <> 'forbidden')")
        )


async def test_another_violation_at_each_site_is_not_reported_as_a_duplicate(engine: AsyncEngine) -> None:
    company_id = await _company(engine)
    sites: list[tuple[str, str, Callable[[AsyncConnection], Awaitable[Any]]]] = [
        ("companies", "slug", lambda c: companies.create_company(c, name="F", slug="forbidden")),
        ("teams", "name", lambda c: agents.create_team(c, company="acme", name="forbidden")),
        (
            "agents",
            "name",
            lambda c: agents.hire_agent(c, company="acme", name="forbidden", role="x", adapter="process"),
        ),
        (
            "secrets",
            "name",
            lambda c: secrets_store.create_secret(c, KEY, company_id=company_id, name="forbidden", value="v"),
        ),
        (
            "integrations",
            "name",
            lambda c: integrations.add_integration(
                c, None, company_id=company_id, kind="x", name="forbidden"
            ),
        ),
    ]
    for table, column, work in sites:
        await _forbid_name(engine, table, column)
        error = await _raises(engine, work)
        assert type(error) is InvalidInput, (table, error.message)
        assert EXTRA_RULE in error.message and error.details["constraint"] == EXTRA_RULE
        assert (
            "taken" not in error.message and "exists" not in error.message and "already" not in error.message
        )
        _one_clean_line(error)


async def test_deleting_a_secret_in_use_names_the_user_that_blocks_it(engine: AsyncEngine) -> None:
    company_id = await _company(engine)
    async with engine.begin() as conn:
        await secrets_store.create_secret(conn, KEY, company_id=company_id, name="tok", value="v")
        await secrets_store.create_secret(conn, KEY, company_id=company_id, name="other", value="v")
        await integrations.add_integration(
            conn, None, company_id=company_id, kind="github", name="gh", secret_name="tok"
        )
        # Something else that holds on to secrets: it is not an integration, and must not be called one.
        await conn.execute(
            text("CREATE TABLE zz_holder (secret_id uuid REFERENCES secrets (id) ON DELETE RESTRICT)")
        )
        await conn.execute(text("INSERT INTO zz_holder SELECT id FROM secrets WHERE name = 'other'"))
    in_use = await _raises(
        engine, lambda c: secrets_store.delete_secret(c, company_id=company_id, name="tok")
    )
    assert type(in_use) is Conflict
    assert in_use.message == "secret 'tok' is the credential of an integration; remove the integration first"
    held = await _raises(
        engine, lambda c: secrets_store.delete_secret(c, company_id=company_id, name="other")
    )
    assert type(held) is Conflict and "integration" not in held.message
    assert "zz_holder" in held.message and held.details["constraint"] == "zz_holder_secret_id_fkey"
    _one_clean_line(held)


async def _translated(engine: AsyncEngine, statement: Any, **details: Any) -> CompanyAgentsError:
    with pytest.raises(DBAPIError) as info:
        async with engine.begin() as conn:
            await conn.execute(statement)
    return translate(info.value, **details)


async def test_foreign_keys_checks_and_unknown_constraints_map_by_name(engine: AsyncEngine) -> None:
    acme = await _company(engine)
    globex = await _company(engine, "Globex")
    async with engine.connect() as conn:
        globex_team = (
            await conn.execute(text("SELECT id FROM teams WHERE company_id = :c"), {"c": globex})
        ).scalar_one()

    # An agent in another company's team: the composite FK says "not this company's team".
    cross = await _translated(
        engine,
        insert(agents_table).values(
            company_id=acme, team_id=globex_team, name="x", role="r", adapter="process"
        ),
    )
    assert type(cross) is InvalidInput and cross.details["constraint"] == "fk_agents_team"
    assert cross.message == "the team is not one of this company's teams" and cross.details["field"] == "team"

    # A team of a company that does not exist.
    orphan = await _translated(engine, insert(teams_table).values(company_id=uuid.uuid4(), name="t"))
    assert type(orphan) is NotFound and orphan.message == "the company does not exist"

    # A check: the slug format.
    slug = await _translated(engine, insert(companies_table).values(slug="Not A Slug", name="n"))
    assert type(slug) is InvalidInput and slug.details == {
        "field": "slug",
        "constraint": "ck_companies_slug_format",
    }

    # Deleting what others still point at (ON DELETE RESTRICT), with no meaning registered.
    restrict = await _translated(engine, delete(companies_table).where(companies_table.c.id == acme))
    assert type(restrict) is Conflict and restrict.message.startswith("still in use by ")

    # Unknown constraints of every kind name themselves, never the statement or its values.
    async with engine.begin() as conn:
        await conn.execute(text("CREATE UNIQUE INDEX zz_unique_role ON agents (company_id, role)"))
        await conn.execute(text("ALTER TABLE agents ALTER COLUMN role DROP NOT NULL"))
        await conn.execute(text("ALTER TABLE companies ALTER COLUMN description DROP DEFAULT"))
    hire = insert(agents_table).values(company_id=acme, name="secret-name-1", role="dev", adapter="p")
    async with engine.begin() as conn:
        await conn.execute(hire)
    dup = await _translated(
        engine, insert(agents_table).values(company_id=acme, name="secret-name-2", role="dev", adapter="p")
    )
    assert type(dup) is Conflict and "zz_unique_role" in dup.message
    assert "secret-name" not in dup.message and "dev" not in dup.message
    null = await _translated(engine, insert(companies_table).values(slug="ok", name="n", description=None))
    assert type(null) is InvalidInput and null.message == "companies.description is required"
    for error in (cross, orphan, slug, restrict, dup, null):
        _one_clean_line(error)


async def test_a_missing_table_is_a_schema_error_in_one_line(engine: AsyncEngine) -> None:
    await _company(engine)
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE memory_entries"))
    error = await _translated(engine, text("SELECT * FROM memory_entries WHERE topic = 'p4ssw0rd'"))
    assert type(error) is SchemaOutOfDate and error.http_status == 503
    assert 'relation "memory_entries" does not exist' in error.message and "db status" in error.message
    assert "p4ssw0rd" not in error.message
    _one_clean_line(error)


async def test_engines_hide_statement_parameters(db_url: str, tmp_path: Path) -> None:
    from company_agents.db.database import Database
    from company_agents.settings import Settings

    db = Database(settings=Settings(home=tmp_path / "home", database_url=db_url), url=db_url)
    bad = insert(companies_table).values(slug="Bad Slug", name="n", description="hunter2-value")
    try:
        with pytest.raises(DBAPIError) as pooled:
            async with db.engine.begin() as conn:
                await conn.execute(bad)
    finally:
        await db.dispose()
    engine = db.sync_engine()
    try:
        with pytest.raises(DBAPIError) as unpooled, engine.begin() as conn:
            conn.execute(bad)
    finally:
        engine.dispose()
    for info in (pooled, unpooled):
        # The server's own DETAIL line quotes the row; SQLAlchemy's "[parameters: …]" line must not.
        sqlalchemy_part = str(info.value).split("[SQL:", 1)[1]
        assert "hunter2-value" not in sqlalchemy_part and "parameters hidden" in sqlalchemy_part
        assert "hunter2-value" not in translate(info.value).message
