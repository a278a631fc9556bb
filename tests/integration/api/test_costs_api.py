"""/v1 cost entries (keyset pages, filters), export (CSV and JSONL streamed), forecast, adjust (admin)."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from typing import Any

from company_agents import companies, leases, pricing, tasks
from company_agents.costs import ledger
from company_agents.costs.events import cost_from_event
from tests.integration.api.helpers import Api, api
from tests.integration.queue_helpers import make_world

__all__ = ["api"]

ENTRIES = "/v1/companies/acme/costs/entries"


async def _workload(api: Api) -> None:
    world = await make_world(api.db.engine, agent_names=("ada",))
    async with api.db.engine.begin() as conn:
        await tasks.create_task(conn, company="acme", title="t", agent="ada")
        (claim,) = await leases.claim(conn, agent_id=world.agents["ada"]["id"], holder="t", lease_seconds=60)
        events: list[dict[str, Any]] = [
            {"model": "claude-sonnet-4-5", "inputTokens": 1000, "outputTokens": 500, "id": "a"},
            {"model": "in-house-7b", "inputTokens": 1_000_000, "outputTokens": 0, "id": "b"},
            {"kind": "tool", "usd": "0.25", "name": "search", "id": "c"},
        ]
        for event in events:
            cost = await pricing.price_cost(
                conn, world.company_id, cost_from_event({"type": "cost", **event})
            )
            await ledger.record(conn, claim.identity(), fencing_token=claim.fencing_token, cost=cost)
        await companies.create_company(conn, name="Beta")


async def _all(api: Api, token: str, **params: Any) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, "limit": 2, **({"cursor": cursor} if cursor else {})}
        response = await api.call("GET", ENTRIES, token, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        seen += body["data"]
        cursor = body["meta"]["nextCursor"]
        if cursor is None:
            return seen


async def test_entries_page_newest_first_with_filters(api: Api) -> None:
    await _workload(api)
    token = await api.token("read")
    entries = await _all(api, token)
    assert len(entries) == 3 and len({e["id"] for e in entries}) == 3
    keys = [(e["createdAt"], e["id"]) for e in entries]
    assert keys == sorted(keys, reverse=True)
    assert all(e["createdAt"].endswith("Z") for e in entries)
    (tool,) = await _all(api, token, kind="tool")
    assert tool["effectiveUsd"] == "0.25000000" and tool["kind"] == "tool"
    (unpriced,) = await _all(api, token, unpriced="true")
    assert unpriced["effectiveUsd"] is None and unpriced["model"] == "in-house-7b"
    assert len(await _all(api, token, agent="ada", since="today")) == 3
    assert len(await _all(api, token, team="Design")) == 0
    assert await _all(api, token, since="1h", until="30m") == []
    for params in (
        {"since": "someday"},
        {"since": "999999w"},
        {"since": "today", "until": "yesterday"},
        {"agent": "ada", "team": "Engineering"},
        {"kind": "bogus"},
        {"limit": 0},
        {"cursor": "nope"},
    ):
        response = await api.call("GET", ENTRIES, token, params=params)
        assert response.status_code == 422, (params, response.text)
    assert (await api.call("GET", ENTRIES, token, params={"agent": "nobody"})).status_code == 404


async def test_export_streams_csv_and_jsonl_oldest_first(api: Api) -> None:
    await _workload(api)
    token = await api.token("read")
    newest_first = await _all(api, token)
    as_csv = await api.call("GET", "/v1/companies/acme/costs/export", token)
    assert as_csv.status_code == 200, as_csv.text
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [r["id"] for r in rows] == [e["id"] for e in reversed(newest_first)]
    assert sum(Decimal(r["effective_usd"] or 0) for r in rows) == Decimal("0.2605")
    as_jsonl = await api.call("GET", "/v1/companies/acme/costs/export", token, params={"format": "jsonl"})
    assert as_jsonl.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in as_jsonl.text.splitlines()]
    assert lines == list(reversed(newest_first))
    bad = await api.call("GET", "/v1/companies/acme/costs/export", token, params={"format": "xml"})
    assert bad.status_code == 422
    bad_window = await api.call("GET", "/v1/companies/acme/costs/export", token, params={"since": "x"})
    assert bad_window.status_code == 422 and bad_window.json()["error"]["code"] == "invalid_input"


async def test_forecast(api: Api) -> None:
    await _workload(api)
    token = await api.token("read")
    response = await api.call("GET", "/v1/companies/acme/costs/forecast", token)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["scope"] == "company" and data["total"]["usd"] == "0.26050000"
    assert set(data) >= {"forecast", "budget", "period", "trend"}
    if data["forecast"] is not None:  # a monthly period has an end ahead
        assert Decimal(data["forecast"]["low"]) <= Decimal(data["forecast"]["usd"])
        assert Decimal(data["forecast"]["usd"]) >= Decimal("0.2605")


async def test_adjust_needs_admin_and_stays_in_its_company(api: Api) -> None:
    await _workload(api)
    reader, writer, admin = await api.token("read"), await api.token("write"), await api.token("admin")
    (tool,) = await _all(api, reader, kind="tool")
    (unpriced,) = await _all(api, reader, unpriced="true")
    path = "/v1/companies/acme/costs/adjust"
    refund = {"entry": tool["id"], "usd": "-0.05", "reason": "partial refund"}
    assert (await api.call("POST", path, writer, json=refund)).status_code == 403
    done = await api.call("POST", path, admin, json=refund)
    assert done.status_code == 200, done.text
    data = done.json()["data"]
    assert data["adjusted"] is True and data["adjustsEntryId"] == tool["id"]
    assert data["effectiveUsd"] == "-0.05000000" and data["correctedUsd"] == "0.20000000"
    adjustments = await _all(api, reader, kind="adjustment")
    assert [a["id"] for a in adjustments] == [data["id"]]
    for bad in (
        {"entry": tool["id"]},  # neither usd nor reprice
        {"entry": tool["id"], "usd": "-1"},  # no reason
        {"entry": tool["id"], "usd": "-1", "reason": "too much"},  # below zero
        {"entry": tool["id"], "usd": "1", "reprice": True, "reason": "both"},
        {"entry": unpriced["id"], "reprice": True},  # no price known yet
        {"entry": "xyz", "reprice": True},
        {"entry": tool["id"], "usd": "0", "reason": "nothing"},
    ):
        response = await api.call("POST", path, admin, json=bad)
        assert response.status_code == 422, (bad, response.text)
    beta_admin = await api.token("admin", company_id=(await _company_id(api, "beta")))
    other = await api.call("POST", "/v1/companies/beta/costs/adjust", beta_admin, json=refund)
    assert other.status_code == 404, other.text  # Acme's entry under Beta's path
    hidden = await api.call("POST", path, beta_admin, json=refund)
    assert hidden.status_code == 404
    for read in (ENTRIES, "/v1/companies/acme/costs/export", "/v1/companies/acme/costs/forecast"):
        assert (await api.call("GET", read, beta_admin)).status_code == 404, read


async def _company_id(api: Api, slug: str) -> Any:
    async with api.db.engine.connect() as conn:
        return (await companies.get_company(conn, slug))["id"]
