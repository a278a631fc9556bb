"""The dashboard app on a real database through its ASGI interface, entered as the browser does
(through the link `up` prints): the ``dash`` fixture (conftest.py) and its client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from company_agents.dashboard.app import create_dashboard_app
from company_agents.db.database import Database
from company_agents.settings import Settings

PORT = 3101
BASE = f"http://127.0.0.1:{PORT}"


@dataclass
class Dash:
    app: FastAPI
    db: Database
    client: httpx.AsyncClient
    csrf: str
    access: str

    async def post(self, path: str, data: dict[str, str], *, csrf: bool = True) -> httpx.Response:
        body = {**data, "csrf_token": self.csrf} if csrf else data
        return await self.client.post(path, data=body)


async def open_dash(db_url: str, tmp_path: Any) -> AsyncIterator[Dash]:
    settings = Settings(home=tmp_path / "home", database_url=db_url, dashboard_port=PORT)
    db = Database(settings=settings, url=db_url)
    app = create_dashboard_app(db, settings)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        # In through the link `up` prints: the cookie it sets rides on every later request.
        entered = await client.get(f"/?token={app.state.access_token}")
        assert entered.status_code == 303 and entered.headers["location"] == "/"
        yield Dash(app=app, db=db, client=client, csrf=app.state.csrf_token, access=app.state.access_token)
    await db.dispose()
