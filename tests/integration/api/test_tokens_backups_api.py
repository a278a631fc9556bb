"""API tokens and backups over HTTP: admin tokens not restricted to one company only; a new token is
shown once; a backup is made, listed and verified (and a damaged one reported as such)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from company_agents import companies
from tests.integration.api.helpers import Api, api

__all__ = ["api"]


async def _company(api: Api) -> dict[str, Any]:
    async with api.db.engine.begin() as conn:
        return await companies.create_company(conn, name="Acme", team_names=["Eng"])


async def test_tokens_create_list_rotate_revoke(api: Api) -> None:
    acme = await _company(api)
    admin = await api.token("admin", name="root")
    body = {"name": "ci", "scopes": ["read", "write"], "company": "acme", "env": "prod"}
    created = await api.call("POST", "/v1/tokens", admin, json=body)
    assert created.status_code == 201, created.text
    ci = created.json()["data"]
    secret = ci["token"]
    assert secret.startswith("ca_prod_") and len(secret) == len("ca_prod_") + 32
    assert ci["scopes"] == ["read", "write", f"company:{acme['id']}"]
    assert ci["companyId"] == str(acme["id"]) and ci["hint"] == secret[: len(ci["hint"])]
    # The new token works, within its company, and is never shown again.
    who = await api.call("GET", "/v1/whoami", secret)
    assert who.status_code == 200 and who.json()["data"]["tokenId"] == ci["id"]
    listed = await api.call("GET", "/v1/tokens", admin)
    assert [t["name"] for t in listed.json()["data"]] == ["root", "ci"] and secret not in listed.text

    rotated = await api.call("POST", f"/v1/tokens/{ci['id']}/rotate", admin)
    assert rotated.status_code == 200
    new_secret = rotated.json()["data"]["token"]
    assert new_secret != secret and rotated.json()["data"]["id"] == ci["id"]
    assert (await api.call("GET", "/v1/whoami", secret)).status_code == 401
    assert (await api.call("GET", "/v1/whoami", new_secret)).status_code == 200

    revoked = await api.call("POST", f"/v1/tokens/{ci['id']}/revoke", admin)
    assert revoked.status_code == 200 and revoked.json()["data"]["revokedAt"] is not None
    assert "token" not in revoked.json()["data"]
    assert (await api.call("GET", "/v1/whoami", new_secret)).status_code == 401
    assert [t["name"] for t in (await api.call("GET", "/v1/tokens", admin)).json()["data"]] == ["root"]
    everything = await api.call("GET", "/v1/tokens", admin, params={"includeRevoked": "true"})
    assert [t["name"] for t in everything.json()["data"]] == ["root", "ci"]
    # A revoked token cannot be rotated back to life.
    assert (await api.call("POST", f"/v1/tokens/{ci['id']}/rotate", admin)).status_code == 422
    missing = "00000000-0000-0000-0000-000000000001"
    assert (await api.call("POST", f"/v1/tokens/{missing}/revoke", admin)).status_code == 404


async def test_token_routes_need_an_unrestricted_admin_and_good_input(api: Api) -> None:
    acme = await _company(api)
    admin = await api.token("admin")
    body = {"name": "x", "scopes": ["read"]}
    for scopes in (["read"], ["read", "write"], ["admin", f"company:{acme['id']}"]):
        token = await api.token(*scopes)
        assert (await api.call("GET", "/v1/tokens", token)).status_code == 403, scopes
        assert (await api.call("POST", "/v1/tokens", token, json=body)).status_code == 403, scopes
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    for bad in (
        {"name": "x", "scopes": ["root"]},
        {"name": "x", "scopes": []},
        {"name": " ", "scopes": ["read"]},
        {"name": "x", "scopes": ["read"], "env": "staging"},
        {"name": "x", "scopes": ["read"], "extra": True},
    ):
        response = await api.call("POST", "/v1/tokens", admin, json=bad)
        assert response.status_code == 422, (bad, response.text)
    # A company restriction naming no company is not found (not a foreign-key crash).
    ghost = {"name": "x", "scopes": ["read"], "company": "00000000-0000-0000-0000-000000000001"}
    assert (await api.call("POST", "/v1/tokens", admin, json=ghost)).status_code == 404
    # Over HTTP the company goes in `company`; the CLI's company:<id> scope forms are not taken here.
    scoped = {"name": "x", "scopes": [f"company:{acme['id']}"]}
    assert (await api.call("POST", "/v1/tokens", admin, json=scoped)).status_code == 422
    # An expiry already past makes a token that never works.
    expired = await api.call("POST", "/v1/tokens", admin, json={**body, "expiresAt": past})
    assert expired.status_code == 201
    assert (await api.call("GET", "/v1/whoami", expired.json()["data"]["token"])).status_code == 401
    nowhere = await api.call("POST", "/v1/tokens", admin, json={**body, "company": "nowhere"})
    assert nowhere.status_code == 404
    assert (await api.call("POST", "/v1/tokens/not-a-uuid/rotate", admin)).status_code == 422


async def test_backups_create_list_verify(api: Api) -> None:
    acme = await _company(api)
    admin = await api.token("admin")
    writer = await api.token("read", "write")
    scoped = await api.token("admin", f"company:{acme['id']}")
    for token in (writer, scoped):
        assert (await api.call("GET", "/v1/backups", token)).status_code == 403
        assert (await api.call("POST", "/v1/backups", token)).status_code == 403
    assert (await api.call("GET", "/v1/backups", admin)).json()["data"] == []

    created = await api.call("POST", "/v1/backups", admin)
    assert created.status_code == 201, created.text
    backup = created.json()["data"]
    assert backup["here"] and backup["recorded"] and not backup["includesSecrets"]
    assert backup["bytes"] > 0 and any(c.startswith("database") for c in backup["contents"])
    listed = (await api.call("GET", "/v1/backups", admin)).json()["data"]
    assert [b["name"] for b in listed] == [backup["name"]]

    verified = await api.call("POST", f"/v1/backups/{backup['name']}/verify", admin)
    assert verified.status_code == 200, verified.text
    assert verified.json()["data"]["ok"] is True and verified.json()["data"]["problem"] is None
    assert (await api.call("POST", f"/v1/backups/{backup['name']}/verify", writer)).status_code == 403

    # A damaged file is reported, not refused.
    path = api.settings.backups_dir / backup["name"]
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    damaged = await api.call("POST", f"/v1/backups/{backup['name']}/verify", admin)
    assert damaged.status_code == 200 and damaged.json()["data"]["ok"] is False
    assert damaged.json()["data"]["problem"]

    assert (await api.call("POST", "/v1/backups/20990101T000000Z.tar.gz/verify", admin)).status_code == 404
    assert (await api.call("POST", "/v1/backups/..%2Fsecrets/verify", admin)).status_code in (404, 422)
    assert (await api.call("POST", "/v1/backups/notabackup.txt/verify", admin)).status_code == 422
