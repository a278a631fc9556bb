"""Schemathesis against the real API server (uvicorn in a thread) with an admin token, on both backends.

Fixed seed, bounded examples: every response conforms to the schema, no server errors, schema-invalid
data is refused and schema-valid data is not (its built-in checks).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
import uvicorn
from sqlalchemy.ext.asyncio import create_async_engine

from company_agents import api_tokens, companies, tasks
from company_agents.api import openapi
from company_agents.api.app import create_app
from company_agents.db.database import Database, sqlalchemy_url
from company_agents.master_key import MasterKey
from company_agents.settings import Settings
from tests.conftest import examples
from tests.integration.queue_helpers import ThreadedServer, free_port


async def _seed(db_url: str) -> str:
    engine = create_async_engine(sqlalchemy_url(db_url))
    try:
        async with engine.begin() as conn:
            await companies.create_company(conn, name="Acme", team_names=["Engineering"])
            await tasks.create_task(conn, company="acme", title="Something to list")
            _, token = await api_tokens.create_token(conn, name="fuzz", scopes=["admin"])
        return token
    finally:
        await engine.dispose()


def serve_api(db_url: str, home: Path) -> Iterator[str]:
    settings = Settings(home=home, database_url=db_url)
    db = Database(settings=settings, url=db_url)
    port = free_port()
    app = create_app(db, settings)
    app.state.master_key = MasterKey(key=bytes(32), source="test")  # as `up` hands it its bound key
    server = ThreadedServer(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))

    async def serve() -> None:
        try:
            await server.serve()
        finally:
            await db.dispose()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("API server did not start")
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


# The committed document (tests/unit/test_openapi.py keeps it equal to the app's). Cases are made at
# collection, before any database exists, so the auth hook sets a stand-in that the test swaps for the
# admin token its server fixture made; the hook (not headers=) keeps the header's negative cases.
schema = schemathesis.openapi.from_path(str(openapi.DEFAULT_OUTPUT))
# A body past the cap is refused with 413 before it is read (api/body_limit.py), so an over-long
# string that also passes 1 MiB is rejected that way, as every body-taking operation documents.
schema.config.checks.negative_data_rejection.expected_statuses.append("413")
STAND_IN = "ca_dev_" + "f" * 32
_current: dict[str, str] = {}


@schema.auth()
class AdminToken:
    def get(self, case: Any, ctx: Any) -> str:
        return STAND_IN

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@pytest.fixture
def api_base(db_url: str, tmp_path: Path) -> Iterator[str]:
    _current["token"] = asyncio.run(_seed(db_url))
    yield from serve_api(db_url, tmp_path / "home")
    _current.clear()


@schema.parametrize()
@hypothesis.seed(14)
@hypothesis.settings(
    max_examples=examples(25),
    deadline=None,
    derandomize=True,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_api_conforms_to_its_schema(case: Any, api_base: str) -> None:
    if case.headers and case.headers.get("Authorization") == f"Bearer {STAND_IN}":
        case.headers["Authorization"] = f"Bearer {_current['token']}"
    case.call_and_validate(base_url=api_base)
