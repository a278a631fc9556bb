"""Choosing the database: the embedded server or ``DATABASE_URL``. The rest of the code sees an engine."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Engine, create_engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from company_agents.db.embedded import EmbeddedServer
from company_agents.db.embedded_auth import PASSWORD_FILE_NAME
from company_agents.db.redaction import redact as redact
from company_agents.db.revision import read_revision
from company_agents.errors import DatabaseUnavailable, UnsupportedDatabase
from company_agents.master_key import MasterKey
from company_agents.settings import Settings

log = logging.getLogger(__name__)

MIN_SERVER_VERSION_NUM = 150000
ORCHESTRATOR_APP_NAME = "company-agents up"


def sqlalchemy_url(url: str) -> str:
    """The same URL with the psycopg 3 driver named, as SQLAlchemy wants it."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def libpq_url(url: str) -> str:
    """The same URL as libpq (psycopg, pg_dump) wants it."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def check_server_version(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    """Refuse servers older than PostgreSQL 15; warn on Aurora. Returns ``server_version_num``."""
    num = conn.info.server_version
    if num < MIN_SERVER_VERSION_NUM:
        row = conn.execute("SHOW server_version").fetchone()
        found = row[0] if row else str(num)
        raise UnsupportedDatabase(f"PostgreSQL {found} found; Company Agents needs PostgreSQL 15 or newer")
    row = conn.execute("SELECT to_regproc('aurora_version') IS NOT NULL").fetchone()
    if row and row[0]:
        log.warning(
            "Aurora PostgreSQL detected: it is close to, but not exactly, PostgreSQL; not supported",
            extra={"action": "aurora_warning"},
        )
    return num


# A pooled connection back in use within this many seconds is not pinged first (see below).
PING_AFTER_IDLE_SECONDS = 1.0


def ping_idle_connections(engine: Engine, idle_seconds: float = PING_AFTER_IDLE_SECONDS) -> None:
    """Ping a pooled connection on checkout only when it has been idle for ``idle_seconds``.

    ``pool_pre_ping`` pings on every checkout: a round trip before each claim, completion and tool
    call of a busy orchestrator, whose connections were in use a moment ago. The connections a restart
    or a network cut kills are the idle ones, so those are pinged; a dead one is replaced before use
    (DisconnectionError makes the pool connect afresh). One that dies in between fails its statement as
    it would after a successful ping, and the callers' retries (``db.retry``) take it from there.
    """
    from sqlalchemy import event
    from sqlalchemy.exc import DisconnectionError

    dialect = engine.dialect

    def stamp(_dbapi_connection: Any, record: Any, *_: Any) -> None:
        record.info["ca_idle_since"] = time.monotonic()

    def ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("ca_idle_since")
        if since is None or time.monotonic() - since < idle_seconds:
            return
        try:
            alive = dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(f"idle connection is gone: {type(exc).__name__}") from exc
        if not alive:
            raise DisconnectionError("idle connection is gone")

    event.listen(engine.pool, "connect", stamp)
    event.listen(engine.pool, "checkin", stamp)
    event.listen(engine.pool, "checkout", ping_if_idle)


@dataclass
class Database:
    """One process's view of the database: its URL, and the embedded server handle when there is one."""

    settings: Settings
    url: str
    embedded: EmbeddedServer | None = None
    created: bool = False
    server_version_num: int = 0
    # Shown in pg_stat_activity; `company-agents up` sets ORCHESTRATOR_APP_NAME so others can see it runs.
    application_name: str = "company-agents"
    # Set before the first use of ``engine``: its sessions then MAC every audit event they insert
    # (audit.mac). Only the pooled engine carries the key: it is where every event is written.
    audit_key: MasterKey | None = field(default=None, repr=False)
    # The embedded server's password, given to libpq directly: the URL names its file too, but libpq
    # prefers $PGPASSWORD (meant for some other server) to a password file.
    password: str | None = field(default=None, repr=False)
    # The schema revision read when the database was opened (``db.revision``); None: not migrated.
    schema_revision: str | None = None
    _async_engine: AsyncEngine | None = field(default=None, repr=False)

    @property
    def is_embedded(self) -> bool:
        return self.embedded is not None

    @property
    def display_url(self) -> str:
        return redact(self.url)

    @property
    def connect_kwargs(self) -> dict[str, Any]:
        """What libpq needs beside the URL (give it to every connection made from ``url``)."""
        return {"password": self.password} if self.password is not None else {}

    def connect(self, *, autocommit: bool = True) -> psycopg.Connection[tuple[object, ...]]:
        try:
            return psycopg.connect(libpq_url(self.url), autocommit=autocommit, **self.connect_kwargs)
        except psycopg.OperationalError as exc:
            reason = redact(str(exc).strip().splitlines()[0]) if str(exc).strip() else type(exc).__name__
            raise DatabaseUnavailable(f"cannot connect to {self.display_url}: {reason}") from None

    def sync_engine(self) -> Engine:
        """An unpooled engine for short jobs (migrations, doctor, export)."""
        # hide_parameters: SQLAlchemy otherwise appends the statement's values to its error text.
        return create_engine(
            sqlalchemy_url(self.url),
            poolclass=NullPool,
            hide_parameters=True,
            connect_args=self.connect_kwargs,
        )

    @property
    def engine(self) -> AsyncEngine:
        """The process's one pooled async engine, sized from the settings."""
        if self._async_engine is None:
            size = self.settings.pool_size
            connect_args = {"application_name": self.application_name, **self.connect_kwargs}
            if self.audit_key is not None:
                from company_agents.audit import mac as audit_mac  # the crypto stack, only with a key

                connect_args["options"] = audit_mac.session_options(self.audit_key, self.url)
            self._async_engine = create_async_engine(
                sqlalchemy_url(self.url),
                pool_size=size,
                max_overflow=max(2, size // 4),
                pool_recycle=1800,
                hide_parameters=True,
                connect_args=connect_args,
            )
            ping_idle_connections(self._async_engine.sync_engine)
        return self._async_engine

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[AsyncConnection]:
        """A pooled connection in autocommit mode, for single-statement writes (the hot path)."""
        async with self.engine.connect() as conn:
            yield await conn.execution_options(isolation_level="AUTOCOMMIT")

    async def dispose(self) -> None:
        if self._async_engine is not None:
            await self._async_engine.dispose()
            self._async_engine = None

    def close(self) -> None:
        """Release the embedded server handle (the last process out stops the server)."""
        if self.embedded is not None:
            self.embedded.release()
            self.embedded = None


def _ensure_embedded_database(server: EmbeddedServer, name: str) -> bool:
    """Create the application database on the embedded server; True when this call created it."""
    with psycopg.connect(
        libpq_url(server.uri("postgres")), autocommit=True, password=server.password()
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return False
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.DuplicateDatabase:
            return False
        return True


def open_database(settings: Settings) -> Database:
    """Start or attach to the embedded server, or use ``DATABASE_URL``; check the server version."""
    if settings.database_url:
        db = Database(settings=settings, url=settings.database_url)
    else:
        server = EmbeddedServer(settings.db_dir, password_file=settings.secrets_dir / PASSWORD_FILE_NAME)
        server.start()
        try:
            created = _ensure_embedded_database(server, settings.embedded_db_name)
        except BaseException:
            server.release()
            raise
        db = Database(
            settings=settings,
            url=server.uri(settings.embedded_db_name),
            embedded=server,
            password=server.password(),
        )
        db.created = created
    try:
        with db.connect() as conn:
            db.server_version_num = check_server_version(conn)
            # Read on the connection already open: the schema check then needs no query of its own.
            db.schema_revision = read_revision(conn)
    except BaseException:
        db.close()
        raise
    return db


@contextmanager
def database(settings: Settings) -> Iterator[Database]:
    db = open_database(settings)
    try:
        yield db
    finally:
        db.close()
