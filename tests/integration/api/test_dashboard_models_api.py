"""The dashboard read models: six read-only views of a company, cached a few seconds per company."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from company_agents import agents, companies, tasks
from company_agents.api.app import create_app
from company_agents.api.read_cache import TtlCache
from company_agents.db.database import Database
from company_agents.settings import Settings
from tests.integration.api.helpers import Api

VIEWS = ("overview", "inbox", "health", "cost", "org", "activity")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def dash_api(db_url: str, tmp_path: Any, clock: Clock) -> AsyncIterator[Api]:
    settings = Settings(home=tmp_path / "home", database_url=db_url)
    db = Database(settings=settings, url=db_url)
    app = create_app(db, settings)
    app.state.read_cache = TtlCache(ttl=2.0, clock=clock)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:3100") as client:
        yield Api(db=db, client=client, settings=settings)
    await db.dispose()


async def _world(api: Api) -> dict[str, Any]:
    async with api.db.engine.begin() as conn:
        a = await companies.create_company(conn, name="Acme", team_names=["Eng"], budget_usd=Decimal("100"))
        b = await companies.create_company(conn, name="Beta", team_names=["Eng"])
        ada = await agents.hire_agent(
            conn, company="acme", name="ada", role="dev", adapter="process", team="Eng"
        )
        solo = await agents.hire_agent(conn, company="acme", name="solo", role="ops", adapter="process")
        await tasks.create_task(conn, company="acme", title="First", agent="ada")
    return {"a": a, "b": b, "ada": ada, "solo": solo}


async def _view(api: Api, token: str, view: str, slug: str = "acme") -> dict[str, Any]:
    response = await api.call("GET", f"/v1/companies/{slug}/dashboard/{view}", token)
    assert response.status_code == 200, (view, response.text)
    data: dict[str, Any] = response.json()["data"]
    return data


async def test_the_six_views(dash_api: Api) -> None:
    api = dash_api
    w = await _world(api)
    token = await api.token("read")
    overview = await _view(api, token, "overview")
    assert overview["company"]["slug"] == "acme" and overview["tasks"]["total"] == 1
    org = await _view(api, token, "org")
    assert [t["name"] for t in org["teams"]] == ["Eng"]
    assert [a["name"] for a in org["teams"][0]["agents"]] == ["ada"]
    assert [a["name"] for a in org["agentsWithoutTeam"]] == ["solo"]
    health = await _view(api, token, "health")
    assert health["health"]["total"] == 2
    assert {a["id"]: a["health"] for a in health["agents"]} == {
        str(w["ada"]["id"]): "ok",
        str(w["solo"]["id"]): "ok",
    }
    inbox = await _view(api, token, "inbox")
    assert inbox["total"] == 0 and inbox["approvals"] == inbox["handoffs"] == inbox["questions"] == []
    cost = await _view(api, token, "cost")
    assert set(cost) == {"generatedAt", "period", "today"} and cost["period"] and cost["today"]
    activity = await _view(api, token, "activity")
    assert "task.created" in {e["action"] for e in activity["events"]}


async def test_views_are_cached_per_company_for_a_few_seconds(dash_api: Api, clock: Clock) -> None:
    api = dash_api
    await _world(api)
    token = await api.token("read")
    before = {view: await _view(api, token, view) for view in VIEWS}
    async with api.db.engine.begin() as conn:
        await tasks.create_task(conn, company="acme", title="Second", agent="ada")
    clock.now += 1.5
    cached = {view: await _view(api, token, view) for view in VIEWS}
    assert cached == before  # the same answer, generatedAt included
    assert cached["overview"]["tasks"]["total"] == 1
    # Another company is its own entry.
    assert (await _view(api, token, "overview", "beta"))["company"]["slug"] == "beta"
    clock.now += 1.0
    fresh = await _view(api, token, "overview")
    assert fresh["tasks"]["total"] == 2 and fresh["generatedAt"] != before["overview"]["generatedAt"]
    assert (await _view(api, token, "activity"))["events"][0]["payload"]["title"] == "Second"


async def test_scopes_and_other_companies(dash_api: Api) -> None:
    api = dash_api
    w = await _world(api)
    scoped = await api.token("read", f"company:{w['a']['id']}")
    # Warm the cache with an unrestricted token: a cached view still answers 404 to another company's.
    reader = await api.token("read")
    for view in VIEWS:
        await _view(api, reader, view, "beta")
        await _view(api, scoped, view)
        other = await api.call("GET", f"/v1/companies/beta/dashboard/{view}", scoped)
        assert other.status_code == 404, view
        assert (await api.call("GET", f"/v1/companies/acme/dashboard/{view}", None)).status_code == 401
        bad = await api.call("GET", f"/v1/companies/NOT%20A%20SLUG/dashboard/{view}", reader)
        assert bad.status_code == 422
    assert (await api.call("POST", "/v1/companies/acme/dashboard/overview", reader)).status_code == 405
