"""An API app on a test database, a client for it, and tokens of any scope."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
import pytest

from company_agents import api_tokens
from company_agents.api.app import create_app
from company_agents.db.database import Database
from company_agents.settings import Settings


@dataclass
class Api:
    db: Database
    client: httpx.AsyncClient
    settings: Settings

    async def token(self, *scopes: str, company_id: UUID | None = None, name: str = "test") -> str:
        async with self.db.engine.begin() as conn:
            _, token = await api_tokens.create_token(
                conn, name=name, scopes=list(scopes), company_id=company_id
            )
        return token

    async def call(self, method: str, path: str, token: str | None, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return await self.client.request(method, path, headers=headers, **kwargs)


@pytest.fixture
async def api(db_url: str, tmp_path: Any) -> AsyncIterator[Api]:
    settings = Settings(home=tmp_path / "home", database_url=db_url)
    db = Database(settings=settings, url=db_url)
    app = create_app(db, settings)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:3100") as client:
        yield Api(db=db, client=client, settings=settings)
    await db.dispose()
