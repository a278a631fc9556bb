"""/v1 approval comments (a question for the agent) and the company's approval rules (admin to change)."""

from __future__ import annotations

from decimal import Decimal

from company_agents import agents, companies, leases, tasks
from company_agents.approvals import store
from tests.integration.api.helpers import Api, api
from tests.integration.api.test_approvals_api import _pending

__all__ = ["api"]


async def test_comment_asks_the_agent_once_and_needs_text(api: Api) -> None:
    approval = await _pending(api, "buy.domain")
    reader, writer = await api.token("read"), await api.token("write")
    path = f"/v1/approvals/{approval}/comment"
    assert (await api.call("POST", path, reader, json={"text": "why?"})).status_code == 403
    for bad in ({}, {"text": ""}, {"text": "  "}, {"text": "x", "reason": "y"}):
        assert (await api.call("POST", path, writer, json=bad)).status_code == 422, bad
    asked = await api.call("POST", path, writer, json={"text": "Which registrar, and why this one?"})
    assert asked.status_code == 200, asked.text
    data = asked.json()["data"]
    assert data["status"] == "asked_question"
    assert [c["text"] for c in data["comments"]] == ["Which registrar, and why this one?"]
    assert data["comments"][0]["by"].startswith("user:token:")
    again = await api.call("POST", path, writer, json={"text": "and?"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "approval_closed"
    async with api.db.engine.begin() as conn:
        other = await companies.create_company(conn, name="Beta")
    outsider = await api.token("write", company_id=other["id"])
    assert (await api.call("POST", path, outsider, json={"text": "hi"})).status_code == 404


async def test_rules_list_add_remove_need_admin_to_change(api: Api) -> None:
    async with api.db.engine.begin() as conn:
        acme = await companies.create_company(conn, name="Acme")
        beta = await companies.create_company(conn, name="Beta")
        await agents.hire_agent(conn, company="acme", name="ada", role="dev", adapter="process")
    reader, writer, admin = await api.token("read"), await api.token("write"), await api.token("admin")
    path = "/v1/companies/acme/approval-rules"
    body = {"effect": "auto_approve", "action": "deploy.*", "maxUsd": "5", "agent": "ada", "reason": "ok"}
    assert (await api.call("POST", path, writer, json=body)).status_code == 403
    added = await api.call("POST", path, admin, json=body)
    assert added.status_code == 201, added.text
    rule = added.json()["data"]
    assert (rule["effect"], rule["action"], rule["maxUsd"]) == ("auto_approve", "deploy.*", "5")
    assert rule["agentId"] is not None and rule["createdBy"].startswith("user:token:")
    listed = await api.call("GET", path, reader)
    assert listed.status_code == 200 and listed.json()["data"] == [rule]
    for bad in (
        {"effect": "auto_approve"},  # no criterion
        {"effect": "maybe", "action": "x"},
        {"effect": "auto_deny", "category": "nope"},
        {"effect": "auto_deny", "maxUsd": "-1"},
        {"effect": "auto_deny", "action": "x", "extra": 1},
    ):
        response = await api.call("POST", path, admin, json=bad)
        assert response.status_code == 422, (bad, response.text)
    unknown_agent = {"effect": "auto_deny", "agent": "nobody"}
    assert (await api.call("POST", path, admin, json=unknown_agent)).status_code == 404
    # A company admin sees only its company: Beta's rules are not there for it.
    scoped = await api.token("admin", company_id=acme["id"])
    beta_path = "/v1/companies/beta/approval-rules"
    assert (await api.call("GET", beta_path, scoped)).status_code == 404
    assert (
        await api.call("POST", beta_path, scoped, json={"effect": "auto_deny", "action": "x"})
    ).status_code == 404
    assert (await api.call("DELETE", f"{beta_path}/{rule['id']}", admin)).status_code == 404  # not Beta's
    assert beta["id"] is not None
    assert (await api.call("DELETE", f"{path}/{rule['id']}", writer)).status_code == 403
    removed = await api.call("DELETE", f"{path}/{rule['id'][:8]}", scoped)
    assert removed.status_code == 200, removed.text
    assert removed.json()["data"] == rule
    assert (await api.call("GET", path, reader)).json()["data"] == []
    assert (await api.call("DELETE", f"{path}/{rule['id']}", admin)).status_code == 404


async def test_an_auto_deny_rule_added_over_the_api_answers_at_once(api: Api) -> None:
    async with api.db.engine.begin() as conn:
        await companies.create_company(conn, name="Acme")
        worker = await agents.hire_agent(conn, company="acme", name="ada", role="dev", adapter="process")
        await tasks.create_task(conn, company="acme", title="Ship", agent="ada")
    admin = await api.token("admin")
    rule = {"effect": "auto_deny", "action": "deploy.*", "reason": "no deploys this week"}
    assert (await api.call("POST", "/v1/companies/acme/approval-rules", admin, json=rule)).status_code == 201
    async with api.db.engine.begin() as conn:
        (claim,) = await leases.claim(conn, agent_id=worker["id"], holder="t", lease_seconds=60)
        row, _ = await store.request(
            conn,
            claim.identity(),
            fencing_token=claim.fencing_token,
            new=store.NewApproval(action="deploy.prod", reasoning="ship", cost_usd=Decimal("1")),
            expiry_seconds=600,
        )
    assert row["status"] == "denied"
