"""/v1 agent patch, task assign and task comments: behaviour, audit, 404 across companies, 422."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from company_agents import agents, companies, leases, tasks
from tests.integration.api.helpers import Api, api

__all__ = ["api"]


async def _world(api: Api) -> dict[str, Any]:
    async with api.db.engine.begin() as conn:
        a = await companies.create_company(conn, name="Acme", team_names=["Eng"], budget_usd=None)
        b = await companies.create_company(conn, name="Beta", team_names=["Ops"])
        ada = await agents.hire_agent(conn, company="acme", name="ada", role="dev", adapter="process")
        await agents.hire_agent(conn, company="acme", name="old", role="dev", adapter="process")
        await agents.set_agent_status(conn, company="acme", agent="old", move="retire")
        await agents.hire_agent(conn, company="beta", name="bob", role="dev", adapter="process")
        await agents.create_team(conn, company="acme", name="Small", budget_usd=None)
        task = await tasks.create_task(conn, company="acme", title="Write it")
        task_b = await tasks.create_task(conn, company="beta", title="B's task")
    return {"a": a, "b": b, "ada": ada, "task": task, "task_b": task_b}


async def _audit(api: Api, subject_id: Any, action: str) -> list[dict[str, Any]]:
    async with api.db.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT actor, payload FROM audit_events WHERE subject_id = :s AND action = :a ORDER BY id"),
            {"s": str(subject_id), "a": action},
        )
        return [dict(r) for r in rows.mappings()]


async def test_patch_agent_changes_fields_and_is_audited(api: Api) -> None:
    w = await _world(api)
    token = await api.token("write")
    body = {
        "name": "ada2",
        "role": "lead dev",
        "team": "Eng",
        "budgetUsd": "5",
        "taskBudgetUsd": "1.5",
        "maxConcurrentTasks": 3,
        "model": "gpt-x",
        "approvals": "spend_over:2,external_send",
    }
    patched = await api.call("PATCH", "/v1/companies/acme/agents/ada", token, json=body)
    assert patched.status_code == 200, patched.text
    data = patched.json()["data"]
    assert (data["name"], data["role"], data["team"]) == ("ada2", "lead dev", "Eng")
    assert (data["budgetUsd"], data["taskBudgetUsd"]) == ("5.0000", "1.5000")
    assert data["maxConcurrentTasks"] == 3 and data["model"] == "gpt-x"
    assert data["approvalPolicy"] == {"spendOverUsd": "2", "categories": ["external_send"]}
    got = (await api.call("GET", "/v1/companies/acme/agents/ada2", token)).json()["data"]
    assert got == data
    (event,) = await _audit(api, w["ada"]["id"], "agent.updated")
    assert event["actor"].startswith("user:token:")
    assert event["payload"]["name"] == {"from": "ada", "to": "ada2"}
    assert set(event["payload"]) == {
        "name",
        "role",
        "team_id",
        "budget_usd",
        "task_budget_usd",
        "max_concurrent_tasks",
        "model",
        "approval_policy",
    }
    # Null clears what may be empty; the fields left out stay.
    cleared = await api.call(
        "PATCH", "/v1/companies/acme/agents/ada2", token, json={"team": None, "budgetUsd": None}
    )
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["data"]["team"] is None and cleared.json()["data"]["budgetUsd"] is None
    assert cleared.json()["data"]["role"] == "lead dev"
    # Nothing changed: no new audit event.
    same = await api.call("PATCH", "/v1/companies/acme/agents/ada2", token, json={"role": "lead dev"})
    assert same.status_code == 200
    assert len(await _audit(api, w["ada"]["id"], "agent.updated")) == 2


async def test_patch_agent_refusals(api: Api) -> None:
    await _world(api)
    token = await api.token("write")
    path = "/v1/companies/acme/agents/ada"
    for bad in ({"name": None}, {"maxConcurrentTasks": 0}, {"budgetUsd": 1}, {"adapter": "x"}, {"role": ""}):
        response = await api.call("PATCH", path, token, json=bad)
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["error"]["code"] == "invalid_input"
    async with api.db.engine.begin() as conn:
        await companies.update_company(conn, "acme", {"budget_usd": 10})
    over = await api.call("PATCH", path, token, json={"budgetUsd": "11"})
    assert over.status_code == 422 and over.json()["error"]["details"]["field"] == "budget"
    taken = await api.call("PATCH", path, token, json={"name": "old"})
    assert taken.status_code == 409, taken.text
    retired = await api.call("PATCH", "/v1/companies/acme/agents/old", token, json={"role": "x"})
    assert retired.status_code == 409, retired.text
    no_team = await api.call("PATCH", path, token, json={"team": "Ops"})  # Beta's team
    assert no_team.status_code == 404, no_team.text


async def test_assign_and_reassign(api: Api) -> None:
    w = await _world(api)
    token = await api.token("write")
    path = f"/v1/tasks/{w['task']['id']}/assign"
    to_ada = await api.call("POST", path, token, json={"agent": "ada"})
    assert to_ada.status_code == 200, to_ada.text
    assert to_ada.json()["data"]["assignedAgentId"] == str(w["ada"]["id"])
    assert to_ada.json()["data"]["status"] == "queued"
    to_team = await api.call("POST", path, token, json={"team": "Small"})
    data = to_team.json()["data"]
    assert data["assignedAgentId"] is None and data["assignedTeamId"] is not None
    anyone = (await api.call("POST", path, token, json={})).json()["data"]
    assert anyone["assignedAgentId"] is None and anyone["assignedTeamId"] is None
    events = await _audit(api, w["task"]["id"], "task.assigned")
    assert [e["payload"]["agent"] for e in events] == ["ada", None, None]
    assert [e["payload"]["team"] for e in events] == [None, "Small", None]
    retired = await api.call("POST", path, token, json={"agent": "old"})
    assert retired.status_code == 422, retired.text
    other = await api.call("POST", path, token, json={"agent": "bob"})  # Beta's agent
    assert other.status_code == 404, other.text
    both = await api.call("POST", path, token, json={"agent": "ada", "team": "Small"})
    assert both.status_code == 422
    bogus = await api.call("POST", path, token, json={"agent": ""})
    assert bogus.status_code == 422


async def test_assign_refuses_a_running_task_and_leaves_its_lease(api: Api) -> None:
    w = await _world(api)
    token = await api.token("write")
    path = f"/v1/tasks/{w['task']['id']}/assign"
    assert (await api.call("POST", path, token, json={"agent": "ada"})).status_code == 200
    async with api.db.engine.begin() as conn:
        (claim,) = await leases.claim(conn, agent_id=w["ada"]["id"], holder="t", lease_seconds=60)
    assert claim.task_id == w["task"]["id"]
    async with api.db.engine.begin() as conn:
        await agents.hire_agent(conn, company="acme", name="eve", role="dev", adapter="process")
    refused = await api.call("POST", path, token, json={"agent": "eve"})
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "conflict"
    async with api.db.engine.connect() as conn:
        held = (
            await conn.execute(text("SELECT run_id FROM leases WHERE task_id = :t"), {"t": w["task"]["id"]})
        ).scalar_one()
        task = await tasks.get_task(conn, w["task"]["id"])
    assert held == claim.run_id and task["assigned_agent_id"] == w["ada"]["id"]
    cancelled = await api.call("POST", f"/v1/tasks/{w['task']['id']}/cancel", token)
    assert cancelled.status_code == 200
    finished = await api.call("POST", path, token, json={"agent": "eve"})
    assert finished.status_code == 409  # a finished task keeps its record


async def test_comments_thread_pages_oldest_first(api: Api) -> None:
    w = await _world(api)
    token = await api.token("write")
    path = f"/v1/tasks/{w['task']['id']}/comments"
    posted = []
    for n in range(5):
        response = await api.call("POST", path, token, json={"body": f"note {n}"})
        assert response.status_code == 201, response.text
        posted.append(response.json()["data"])
    assert posted[0]["author"].startswith("user:token:") and posted[0]["taskId"] == str(w["task"]["id"])
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = (await api.call("GET", path, token, params=params)).json()
        seen += body["data"]
        cursor = body["meta"]["nextCursor"]
        assert body["meta"]["hasMore"] is (cursor is not None)
        if cursor is None:
            break
    assert seen == posted
    assert len(await _audit(api, w["task"]["id"], "task.commented")) == 5
    for bad in ({"body": ""}, {"body": "   "}, {}, {"body": "x", "extra": 1}):
        assert (await api.call("POST", path, token, json=bad)).status_code == 422, bad
    assert (await api.call("GET", path, token, params={"cursor": "nope"})).status_code == 422
    missing = "/v1/tasks/00000000-0000-0000-0000-000000000000/comments"
    assert (await api.call("POST", missing, token, json={"body": "x"})).status_code == 404


async def test_new_routes_scopes_and_other_company(api: Api) -> None:
    w = await _world(api)
    reader = await api.token("read")
    scoped = await api.token(f"company:{w['a']['id']}")
    own_task, other_task = w["task"]["id"], w["task_b"]["id"]
    writes = [
        ("PATCH", "/v1/companies/{slug}/agents/{agent}", {"role": "x"}),
        ("POST", "/v1/tasks/{task}/assign", {}),
        ("POST", "/v1/tasks/{task}/comments", {"body": "hi"}),
    ]
    for method, template, body in writes:
        own = template.format(slug="acme", agent="ada", task=own_task)
        other = template.format(slug="beta", agent="bob", task=other_task)
        assert (await api.call(method, own, reader, json=body)).status_code == 403, own
        assert (await api.call(method, other, scoped, json=body)).status_code == 404, other
        assert (await api.call(method, own, scoped, json=body)).status_code in (200, 201), own
    comments = f"/v1/tasks/{other_task}/comments"
    assert (await api.call("GET", comments, reader)).status_code == 200
    assert (await api.call("GET", comments, scoped)).status_code == 404


async def test_assigning_a_handed_off_task_keeps_it_handed_off_until_requeued(api: Api) -> None:
    w = await _world(api)
    token = await api.token("write")
    async with api.db.engine.begin() as conn:
        # As a run's hand-off leaves it (the state machine allows it only from an attempt).
        await conn.execute(text("UPDATE tasks SET status = 'handoff' WHERE id = :t"), {"t": w["task"]["id"]})
    assigned = await api.call("POST", f"/v1/tasks/{w['task']['id']}/assign", token, json={"agent": "ada"})
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["data"]["status"] == "handoff"
    requeued = (await api.call("POST", f"/v1/tasks/{w['task']['id']}/requeue", token)).json()["data"]
    assert requeued["status"] == "queued" and requeued["assignedAgentId"] == str(w["ada"]["id"])
