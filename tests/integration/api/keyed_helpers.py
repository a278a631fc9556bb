"""An API app whose process holds a master key, as under ``up``: its sessions MAC audit events and the
secret, integration and audit routes use the key (``app.state.master_key``)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from company_agents.api.app import create_app
from company_agents.db.database import Database
from company_agents.master_key import MasterKey
from company_agents.settings import Settings
from tests.integration.api.helpers import Api


@pytest.fixture
def master_key() -> MasterKey:
    return MasterKey(os.urandom(32), "test")


@pytest.fixture
async def keyed_api(db_url: str, tmp_path: Any, master_key: MasterKey) -> AsyncIterator[Api]:
    settings = Settings(home=tmp_path / "home", database_url=db_url)
    db = Database(settings=settings, url=db_url, audit_key=master_key)
    app = create_app(db, settings)
    app.state.master_key = master_key
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:3100") as client:
        yield Api(db=db, client=client, settings=settings)
    await db.dispose()
