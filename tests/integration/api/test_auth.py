"""/v1 authentication: 401 without a live API token, agents' tokens refused, tokens stored hashed."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text

from company_agents.api.app import create_app
from company_agents.settings import Settings
from company_agents.tokens import new_agent_token, new_lease_token
from tests.integration.api.helpers import Api, api

__all__ = ["api"]


async def test_whoami_names_the_token_and_echoes_the_request_id(api: Api) -> None:
    token = await api.token("read", name="ci")
    response = await api.call("GET", "/v1/whoami", token, headers={"X-Request-Id": "abc-123"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["data"]["name"] == "ci"
    assert body["data"]["scopes"] == ["read"]
    assert body["meta"]["requestId"] == "abc-123"
    assert response.headers["x-request-id"] == "abc-123"
    assert body["meta"]["timestamp"].endswith("Z")
    assert token not in response.text


async def test_missing_bad_and_agent_tokens_get_401(api: Api) -> None:
    cases = [None, "nonsense", "ca_dev_" + "0" * 32, new_lease_token(), new_agent_token()[0]]
    for token in cases:
        response = await api.call("GET", "/v1/whoami", token)
        assert response.status_code == 401, (token, response.text)
        error = response.json()["error"]
        assert error["code"] == "unauthorized"
        assert error["requestId"] == response.headers["x-request-id"]
        assert response.headers["www-authenticate"] == "Bearer"


async def test_token_is_stored_as_a_hash_only(api: Api) -> None:
    token = await api.token("read")
    async with api.db.engine.connect() as conn:
        dump = (await conn.execute(text("SELECT row_to_json(t)::text FROM api_tokens t"))).scalar_one()
    assert token not in dump
    assert token[len("ca_dev_") :] not in dump


async def test_body_limit_and_no_cors_unless_configured(api: Api, db_url: str, tmp_path: Any) -> None:
    token = await api.token("write")
    big = {"name": "x" * (2 * 1024 * 1024)}
    response = await api.call("POST", "/v1/companies", token, json=big)
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"
    assert response.json()["error"]["requestId"] == response.headers["x-request-id"]
    origin = {"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    plain = await api.call("OPTIONS", "/v1/whoami", None, headers=origin)
    assert "access-control-allow-origin" not in plain.headers
    settings = Settings(home=tmp_path / "cors", database_url=db_url, api_cors_origins=["https://ok.example"])
    app = create_app(api.db, settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        allowed = await client.options(
            "/v1/whoami", headers={"Origin": "https://ok.example", "Access-Control-Request-Method": "GET"}
        )
        refused = await client.options("/v1/whoami", headers=origin)
    assert allowed.headers["access-control-allow-origin"] == "https://ok.example"
    assert "access-control-allow-origin" not in refused.headers
