"""/v1 approvals: list, show, approve with edits, deny, decided once, hidden from other companies."""

from __future__ import annotations

from decimal import Decimal

from company_agents import agents, companies, leases, tasks
from company_agents.approvals import store
from tests.integration.api.helpers import Api, api

__all__ = ["api"]


async def _pending(api: Api, action: str) -> str:
    async with api.db.engine.begin() as conn:
        await companies.create_company(conn, name="Acme")
        worker = await agents.hire_agent(
            conn, company="acme", name="ada", role="dev", adapter="process", approvals="spend_over:1"
        )
        await tasks.create_task(conn, company="acme", title="Buy", agent="ada")
        (claim,) = await leases.claim(conn, agent_id=worker["id"], holder="t", lease_seconds=60)
        row, _ = await store.request(
            conn,
            claim.identity(),
            fencing_token=claim.fencing_token,
            new=store.NewApproval(action=action, reasoning="needed", cost_usd=Decimal("25.5")),
            expiry_seconds=600,
        )
    assert row["status"] == "pending"
    return str(row["id"])


async def test_list_show_approve_with_edits_once(api: Api) -> None:
    token = await api.token("write")
    approval = await _pending(api, "buy.domain")
    listed = (
        await api.call("GET", "/v1/companies/acme/approvals", token, params={"status": ["pending"]})
    ).json()
    assert [a["id"] for a in listed["data"]] == [approval]
    assert listed["data"][0]["cost"]["usd"] == "25.5"
    shown = await api.call("GET", f"/v1/approvals/{approval}", token)
    assert shown.json()["data"] == listed["data"][0]
    approved = await api.call(
        "POST", f"/v1/approvals/{approval}/approve", token, json={"edits": {"cost.usd": 20}}
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["data"]["status"] == "approved_with_edits"
    assert approved.json()["data"]["decidedBy"].startswith("user:token:")
    again = await api.call("POST", f"/v1/approvals/{approval}/deny", token, json={"reason": "no"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "approval_closed"


async def test_deny_needs_a_reason_and_other_companies_see_nothing(api: Api) -> None:
    approval = await _pending(api, "deploy")
    async with api.db.engine.begin() as conn:
        other = await companies.create_company(conn, name="Beta")
    outsider = await api.token("write", company_id=other["id"])
    for method, path, body in (
        ("GET", f"/v1/approvals/{approval}", None),
        ("POST", f"/v1/approvals/{approval}/deny", {"reason": "mine now"}),
    ):
        response = await api.call(method, path, outsider, json=body)
        assert response.status_code == 404, response.text
    token = await api.token("write")
    empty = await api.call("POST", f"/v1/approvals/{approval}/deny", token, json={"reason": " "})
    assert empty.status_code == 422
    denied = await api.call("POST", f"/v1/approvals/{approval}/deny", token, json={"reason": "too risky"})
    assert denied.json()["data"]["status"] == "denied"
