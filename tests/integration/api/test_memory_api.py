"""The memory routes: the latest entry per topic with scope filters, and a topic's whole history."""

from __future__ import annotations

from typing import Any

from company_agents import agents, companies, memory
from tests.integration.api.helpers import Api, api

__all__ = ["api"]


async def _world(api: Api) -> dict[str, Any]:
    async with api.db.engine.begin() as conn:
        a = await companies.create_company(conn, name="Acme", team_names=["Eng"])
        b = await companies.create_company(conn, name="Beta", team_names=["Eng"])
        ada = await agents.hire_agent(conn, company="acme", name="ada", role="dev", adapter="process")
        for body in ("v1", "v2", "v3"):
            await memory.write_memory(
                conn, company_id=a["id"], scope="agent", scope_id=ada["id"], topic="style", body=body
            )
        await memory.write_memory(
            conn, company_id=a["id"], scope="company", scope_id=a["id"], topic="mission", body="ship"
        )
        await memory.write_memory(
            conn, company_id=b["id"], scope="company", scope_id=b["id"], topic="mission", body="beta's"
        )
    return {"a": a, "b": b, "ada": ada}


async def _data(api: Api, token: str, path: str, **params: Any) -> list[dict[str, Any]]:
    response = await api.call("GET", path, token, params=params)
    assert response.status_code == 200, response.text
    assert response.json()["meta"]["hasMore"] is False
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def test_latest_per_topic_filters_and_history(api: Api) -> None:
    w = await _world(api)
    token = await api.token("read")
    base = "/v1/companies/acme/memory"

    latest = await _data(api, token, base)
    assert [(e["scope"], e["topic"], e["body"]) for e in latest] == [
        ("company", "mission", "ship"),
        ("agent", "style", "v3"),
    ]
    assert latest[1]["scopeId"] == str(w["ada"]["id"]) and latest[1]["actor"] == "user:local"
    by_agent = await _data(api, token, base, scope="agent", scopeId="ada")
    assert [e["body"] for e in by_agent] == ["v3"]
    assert [e["body"] for e in await _data(api, token, base, scope="company")] == ["ship"]
    assert [e["body"] for e in await _data(api, token, base, topic="mission")] == ["ship"]

    history = await _data(api, token, f"{base}/history", scope="agent", scopeId="ada", topic="style")
    assert [e["body"] for e in history] == ["v3", "v2", "v1"]
    company_history = await _data(api, token, f"{base}/history", scope="company", topic="mission")
    assert [e["body"] for e in company_history] == ["ship"]


async def test_bad_input_scopes_and_other_companies(api: Api) -> None:
    w = await _world(api)
    reader = await api.token("read")
    base = "/v1/companies/acme/memory"
    for path, params in (
        (base, {"scope": "planet"}),
        (f"{base}/history", {"scope": "agent", "scopeId": "ada"}),  # no topic
        (f"{base}/history", {"scope": "agent", "topic": "style"}),  # agent memory needs its agent
        (base, {"topic": ""}),
    ):
        response = await api.call("GET", path, reader, params=params)
        assert response.status_code == 422, (path, params, response.text)
    unknown = await api.call("GET", base, reader, params={"scope": "agent", "scopeId": "nobody"})
    assert unknown.status_code == 404

    scoped = await api.token("read", f"company:{w['a']['id']}")
    assert (await api.call("GET", base, scoped)).status_code == 200
    assert (await api.call("GET", "/v1/companies/beta/memory", scoped)).status_code == 404
    other_history = await api.call(
        "GET", "/v1/companies/beta/memory/history", scoped, params={"scope": "company", "topic": "mission"}
    )
    assert other_history.status_code == 404
    assert (await api.call("GET", base, None)).status_code == 401
