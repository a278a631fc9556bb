"""/v1 resources end to end on the ASGI app: companies, teams, agents, tasks, runs."""

from __future__ import annotations

from typing import Any

from company_agents.api.schemas.common import CURSOR_PATTERN
from tests.integration.api.helpers import Api, api

__all__ = ["api"]


async def _company(api: Api, token: str, slug: str = "acme") -> dict[str, Any]:
    response = await api.call(
        "POST",
        "/v1/companies",
        token,
        json={"name": slug.title(), "slug": slug, "budgetUsd": "100.5", "teams": ["Engineering"]},
    )
    assert response.status_code == 201, response.text
    return dict(response.json()["data"])


async def test_company_lifecycle(api: Api) -> None:
    token = await api.token("write")
    company = await _company(api, token)
    assert company["budgetUsd"] == "100.5000"  # money is a string
    assert company["createdAt"].endswith("Z")
    got = (await api.call("GET", "/v1/companies/acme", token)).json()["data"]
    assert got == company
    patched = await api.call("PATCH", "/v1/companies/acme", token, json={"description": "widgets"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["data"]["description"] == "widgets"
    teams = (await api.call("GET", "/v1/companies/acme/teams", token)).json()["data"]
    assert [t["name"] for t in teams] == ["Engineering"]
    archived = await api.call("POST", "/v1/companies/acme/archive", token)
    assert archived.json()["data"]["status"] == "archived"
    listed = (await api.call("GET", "/v1/companies", token)).json()
    assert listed["data"] == [] and listed["meta"]["hasMore"] is False


async def test_duplicate_slug_is_409_and_bad_body_422(api: Api) -> None:
    token = await api.token("write")
    await _company(api, token)
    again = await api.call("POST", "/v1/companies", token, json={"name": "Acme", "slug": "acme"})
    assert again.status_code == 409, again.text
    bad = await api.call("POST", "/v1/companies", token, json={"name": "X", "budgetUsd": 1.5, "bogus": 1})
    assert bad.status_code == 422
    error = bad.json()["error"]
    assert error["code"] == "invalid_input" and error["requestId"]
    assert {e["field"] for e in error["details"]["errors"]} >= {"budgetUsd", "bogus"}
    garbage = await api.call(
        "POST", "/v1/companies", token, content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert garbage.status_code == 422


async def test_hire_task_and_pages(api: Api) -> None:
    token = await api.token("write")
    await _company(api, token)
    hired = await api.call(
        "POST", "/v1/companies/acme/agents", token, json={"name": "ada", "role": "dev", "adapter": "example"}
    )
    assert hired.status_code == 201, hired.text
    assert hired.json()["data"]["token"].startswith("at_")
    paused = await api.call("POST", "/v1/companies/acme/agents/ada/pause", token)
    assert paused.json()["data"]["status"] == "paused"
    again = await api.call("POST", "/v1/companies/acme/agents/ada/pause", token)
    assert again.status_code == 409
    created = []
    for n in range(7):
        response = await api.call("POST", "/v1/companies/acme/tasks", token, json={"title": f"Task {n}"})
        assert response.status_code == 201, response.text
        created.append(response.json()["data"]["id"])
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        body = (await api.call("GET", "/v1/companies/acme/tasks", token, params=params)).json()
        seen += [t["id"] for t in body["data"]]
        cursor = body["meta"]["nextCursor"]
        assert body["meta"]["hasMore"] is (cursor is not None)
        if cursor is None:
            break
        assert __import__("re").match(CURSOR_PATTERN, cursor)
    assert seen == list(reversed(created))  # newest first, each once
    task = created[0]
    patched = await api.call("PATCH", f"/v1/tasks/{task}", token, json={"title": "Renamed", "priority": 5})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["data"]["title"], patched.json()["data"]["priority"]) == ("Renamed", 5)
    cancelled = await api.call("POST", f"/v1/tasks/{task}/cancel", token)
    assert cancelled.json()["data"]["status"] == "cancelled"
    illegal = await api.call("POST", f"/v1/tasks/{task}/approve", token)
    assert illegal.status_code == 409 and illegal.json()["error"]["code"] == "illegal_transition"
    finished = await api.call("PATCH", f"/v1/tasks/{task}", token, json={"title": "Too late"})
    assert finished.status_code == 409
    runs = await api.call("GET", f"/v1/tasks/{task}/runs", token)
    assert runs.json()["data"] == []
    queued = await api.call("GET", "/v1/companies/acme/tasks", token, params={"status": ["queued"]})
    assert len(queued.json()["data"]) == 6


async def test_limits_and_cursor_validation(api: Api) -> None:
    token = await api.token("read", "write")
    await _company(api, token)
    for params in ({"limit": 0}, {"limit": 201}, {"cursor": "nope"}):
        response = await api.call("GET", "/v1/companies/acme/tasks", token, params=params)
        assert response.status_code == 422, (params, response.text)
    far = "c_1_" + "0" * 32  # schema-valid, decodes, and simply has nothing before it
    response = await api.call("GET", "/v1/companies/acme/tasks", token, params={"cursor": far})
    assert response.status_code == 200 and response.json()["data"] == []


async def test_cost_rollup_reads_and_topup_needs_admin(api: Api) -> None:
    writer = await api.token("write")
    await _company(api, writer)
    rollup = await api.call("GET", "/v1/companies/acme/costs", writer)
    assert rollup.status_code == 200, rollup.text
    assert isinstance(rollup.json()["data"]["total"]["usd"], str)
    team = await api.call("GET", "/v1/companies/acme/costs/teams/Engineering", writer)
    assert team.status_code == 200, team.text
    assert team.json()["data"]["scope"] == "team"
    unknown = await api.call("GET", "/v1/companies/acme/costs/agents/nobody", writer)
    assert unknown.status_code == 404
    body = {"team": "Engineering", "usd": "1"}
    assert (await api.call("POST", "/v1/companies/acme/costs/topup", writer, json=body)).status_code == 403
    admin = await api.token("admin")
    topped = await api.call("POST", "/v1/companies/acme/costs/topup", admin, json=body)
    assert topped.status_code in (200, 409, 422), topped.text  # allowed through; the budget decides


async def test_one_agent_reads_as_it_does_in_the_list(api: Api) -> None:
    token = await api.token("write")
    await _company(api, token)
    body = {"name": "ada", "role": "dev", "adapter": "example", "team": "Engineering"}
    hired = (await api.call("POST", "/v1/companies/acme/agents", token, json=body)).json()["data"]
    one = (await api.call("GET", "/v1/companies/acme/agents/ada", token)).json()["data"]
    listed = (await api.call("GET", "/v1/companies/acme/agents", token)).json()["data"]
    paused = (await api.call("POST", "/v1/companies/acme/agents/ada/pause", token)).json()["data"]
    assert hired["team"] == one["team"] == paused["team"] == "Engineering"
    assert listed == [one | {"status": "idle"}] or listed == [one]
