"""The webhook routes: admin scope only, the secret shown once, deliveries listed with status."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from company_agents import api_tokens, companies
from company_agents.api.app import create_app
from company_agents.db.database import Database
from company_agents.master_key import MasterKey
from company_agents.settings import Settings


@pytest.fixture
async def client(db_url: str, tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Database]]:
    settings = Settings(home=tmp_path / "home", database_url=db_url)
    db = Database(settings=settings, url=db_url)
    app = create_app(db, settings)
    app.state.master_key = MasterKey(key=bytes(32), source="test")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:3100") as c:
        yield c, db
    await db.dispose()


async def test_webhook_routes(client: tuple[httpx.AsyncClient, Database]) -> None:
    http, db = client
    async with db.engine.begin() as conn:
        await companies.create_company(conn, name="Acme", team_names=["Eng"])
        _, admin = await api_tokens.create_token(conn, name="a", scopes=["admin"])
        _, writer = await api_tokens.create_token(conn, name="w", scopes=["read", "write"])
    base = "/v1/companies/acme"

    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    body = {"url": "https://example.com/hook", "events": ["task.*", "approval.*", "budget.*"]}
    assert (await http.post(f"{base}/webhooks", json=body, headers=auth(writer))).status_code == 403
    created = await http.post(f"{base}/webhooks", json=body, headers=auth(admin))
    assert created.status_code == 201, created.text
    endpoint = created.json()["data"]
    assert endpoint["secret"].startswith("whsec_") and endpoint["events"] == body["events"]
    bad = await http.post(
        f"{base}/webhooks", json={**body, "url": "ftp://example.com/x"}, headers=auth(admin)
    )
    assert bad.status_code == 422
    listed = await http.get(f"{base}/webhooks", headers=auth(admin))
    assert listed.status_code == 200 and endpoint["secret"] not in listed.text
    assert [e["id"] for e in listed.json()["data"]] == [endpoint["id"]]
    queued = await http.post(f"{base}/webhooks/{endpoint['id']}/test", headers=auth(admin))
    assert queued.status_code == 202, queued.text
    delivery_id = queued.json()["data"]["deliveryId"]
    deliveries = (await http.get(f"{base}/webhook-deliveries", headers=auth(admin))).json()
    assert [(d["id"], d["status"], d["eventType"]) for d in deliveries["data"]] == [
        (delivery_id, "pending", "webhook.test")
    ]
    again = await http.post(f"{base}/webhook-deliveries/{delivery_id}/redeliver", headers=auth(admin))
    assert again.status_code == 202
    page = (await http.get(f"{base}/webhook-deliveries?limit=1", headers=auth(admin))).json()
    assert page["meta"]["hasMore"] and page["meta"]["nextCursor"] == f"d_{page['data'][0]['id']}"
    removed = await http.delete(f"{base}/webhooks/{endpoint['id']}", headers=auth(admin))
    assert removed.status_code == 200
    assert (await http.delete(f"{base}/webhooks/{endpoint['id']}", headers=auth(admin))).status_code == 404
