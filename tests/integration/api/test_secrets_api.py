"""The secret and integration routes (admin for writes; secrets admin even to list): a value goes in
and never comes back out, in any response, error or log line."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from company_agents import companies, secrets_store
from company_agents.master_key import MasterKey
from tests.integration.api.helpers import Api
from tests.integration.api.keyed_helpers import keyed_api, master_key

__all__ = ["keyed_api", "master_key"]

VALUE = "sk-live-0123456789abcdef-never-shown"
ROTATED = "sk-live-fedcba9876543210-rotated"
CREDENTIAL = "ghp_credential_value_never_shown"


class Recorder:
    """Every response the test sees, so one check can scan them all for the values."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.responses: list[httpx.Response] = []

    async def __call__(self, method: str, path: str, token: str | None, **kwargs: Any) -> httpx.Response:
        response = await self.api.call(method, path, token, **kwargs)
        self.responses.append(response)
        return response


async def _world(api: Api) -> dict[str, Any]:
    async with api.db.engine.begin() as conn:
        a = await companies.create_company(conn, name="Acme", team_names=["Eng"])
        b = await companies.create_company(conn, name="Beta", team_names=["Eng"])
    return {"a": a, "b": b}


async def test_secrets_set_list_rotate_delete_never_show_the_value(
    keyed_api: Api, master_key: MasterKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    api = keyed_api
    w = await _world(api)
    call = Recorder(api)
    admin = await api.token("admin")
    base = "/v1/companies/acme/secrets"

    created = await call("PUT", f"{base}/OPENAI_KEY", admin, json={"value": VALUE, "description": "llm"})
    assert created.status_code == 200, created.text
    secret = created.json()["data"]
    assert secret["name"] == "OPENAI_KEY" and secret["description"] == "llm"
    assert secret["keyId"] == master_key.key_id and secret["lastUsedAt"] is None
    listed = await call("GET", base, admin)
    assert [s["name"] for s in listed.json()["data"]] == ["OPENAI_KEY"]
    async with api.db.engine.connect() as conn:
        assert await secrets_store.reveal(conn, master_key, w["a"]["id"], "OPENAI_KEY") == VALUE

    # PUT again sets the value in place (same id); rotate does the same for a secret that exists.
    again = await call("PUT", f"{base}/OPENAI_KEY", admin, json={"value": ROTATED})
    assert again.status_code == 200 and again.json()["data"]["id"] == secret["id"]
    async with api.db.engine.connect() as conn:
        assert await secrets_store.reveal(conn, master_key, w["a"]["id"], "OPENAI_KEY") == ROTATED
    rotated = await call("POST", f"{base}/OPENAI_KEY/rotate", admin, json={"value": VALUE})
    assert rotated.status_code == 200 and rotated.json()["data"]["updatedAt"] >= secret["updatedAt"]
    async with api.db.engine.connect() as conn:
        assert await secrets_store.reveal(conn, master_key, w["a"]["id"], "OPENAI_KEY") == VALUE
    assert (await call("POST", f"{base}/NOPE/rotate", admin, json={"value": VALUE})).status_code == 404

    # The activity log records the changes, by name only.
    activity = await call("GET", "/v1/companies/acme/activity", admin, params={"q": "category:secret"})
    assert [e["action"] for e in activity.json()["data"]] == [
        "secret.rotated",
        "secret.rotated",
        "secret.created",
    ]

    removed = await call("DELETE", f"{base}/OPENAI_KEY", admin)
    assert removed.status_code == 200 and removed.json()["data"]["id"] == secret["id"]
    assert (await call("DELETE", f"{base}/OPENAI_KEY", admin)).status_code == 404
    assert (await call("GET", base, admin)).json()["data"] == []

    assert len(call.responses) > 5
    for response in call.responses:
        assert VALUE not in response.text and ROTATED not in response.text, response.request.url
    assert VALUE not in caplog.text and ROTATED not in caplog.text


async def test_secret_scopes_bad_input_and_other_companies(keyed_api: Api) -> None:
    api = keyed_api
    w = await _world(api)
    call = Recorder(api)
    base = "/v1/companies/acme/secrets"
    admin = await api.token("admin")
    assert (await call("PUT", f"{base}/KEEP", admin, json={"value": VALUE})).status_code == 200
    for scopes in (["read"], ["read", "write"], [f"company:{w['a']['id']}"]):
        token = await api.token(*scopes)
        assert (await call("GET", base, token)).status_code == 403, scopes
        assert (await call("PUT", f"{base}/X", token, json={"value": VALUE})).status_code == 403
        assert (await call("POST", f"{base}/KEEP/rotate", token, json={"value": VALUE})).status_code == 403
        assert (await call("DELETE", f"{base}/KEEP", token)).status_code == 403
    other = await api.token("admin", f"company:{w['b']['id']}")
    assert (await call("GET", base, other)).status_code == 404
    assert (await call("PUT", f"{base}/X", other, json={"value": VALUE})).status_code == 404
    assert (await call("DELETE", f"{base}/KEEP", other)).status_code == 404
    for path, body in (
        (f"{base}/9starts-with-a-digit", {"value": VALUE}),
        (f"{base}/OK", {"value": ""}),
        (f"{base}/OK", {}),
        (f"{base}/OK", {"value": VALUE, "unknown": 1}),
    ):
        response = await call("PUT", path, admin, json=body)
        assert response.status_code == 422, (path, response.text)
    # A lone surrogate (legal as a JSON escape) is not text: 422, not a crash.
    surrogate = await call(
        "PUT",
        f"{base}/OK",
        admin,
        content=b'{"value": "half a pair \\ud800"}',
        headers={"Content-Type": "application/json"},
    )
    assert surrogate.status_code == 422, surrogate.text
    for response in call.responses:
        assert VALUE not in response.text


async def test_integrations_list_add_remove_with_a_write_only_credential(keyed_api: Api) -> None:
    api = keyed_api
    w = await _world(api)
    call = Recorder(api)
    admin = await api.token("admin")
    reader = await api.token("read")
    writer = await api.token("read", "write")
    base = "/v1/companies/acme/integrations"
    body = {"kind": "github", "name": "gh", "config": {"org": "acme"}, "credential": CREDENTIAL}

    assert (await call("POST", base, writer, json=body)).status_code == 403
    added = await call("POST", base, admin, json=body)
    assert added.status_code == 201, added.text
    gh = added.json()["data"]
    assert (gh["kind"], gh["name"], gh["config"], gh["credentialSecret"]) == (
        "github",
        "gh",
        {"org": "acme"},
        "integration.gh",
    )
    assert (await call("POST", base, admin, json=body)).status_code == 409
    # An existing secret as the credential; a secret in use cannot be deleted.
    await call("PUT", "/v1/companies/acme/secrets/SLACK", admin, json={"value": VALUE})
    slack = await call("POST", base, admin, json={"kind": "slack", "name": "chat", "secret": "SLACK"})
    assert slack.status_code == 201 and slack.json()["data"]["credentialSecret"] == "SLACK"
    assert (await call("DELETE", "/v1/companies/acme/secrets/SLACK", admin)).status_code == 409

    listed = await call("GET", base, reader)
    assert [i["name"] for i in listed.json()["data"]] == ["chat", "gh"]
    assert (await call("DELETE", f"{base}/gh", writer)).status_code == 403
    removed = await call("DELETE", f"{base}/gh", admin)
    assert removed.status_code == 200 and removed.json()["data"]["id"] == gh["id"]
    # Its own credential secret went with it; the shared one stays.
    secrets = await call("GET", "/v1/companies/acme/secrets", admin)
    assert [s["name"] for s in secrets.json()["data"]] == ["SLACK"]
    assert (await call("DELETE", f"{base}/gh", admin)).status_code == 404

    for bad in (
        {**body, "name": "gh2", "config": {"apiToken": "x"}},  # a credential in plain config
        {**body, "name": "gh3", "secret": "SLACK"},  # both a secret and a credential
        {**body, "kind": "GitHub"},
        {**body, "name": "gh4", "config": {"org": "ac\u0000me"}},  # JSON in the database has no NUL
        {"kind": "github"},
    ):
        response = await call("POST", base, admin, json=bad)
        assert response.status_code == 422, (bad, response.text)
    other = await api.token("admin", f"company:{w['b']['id']}")
    assert (await call("GET", base, other)).status_code == 404
    assert (await call("POST", base, other, json={**body, "name": "x"})).status_code == 404
    assert (await call("DELETE", f"{base}/chat", other)).status_code == 404
    for response in call.responses:
        assert CREDENTIAL not in response.text and VALUE not in response.text
