"""The activity routes: search with the product's keys in keyset pages, one entry, streamed exports,
and the audit trail's verification status (admin)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from company_agents import agents, audit, companies, tasks
from company_agents.audit import query as audit_query
from company_agents.audit.seal import seal_pending
from company_agents.db.database import libpq_url
from company_agents.master_key import MasterKey
from tests.integration.api.helpers import Api, api
from tests.integration.api.keyed_helpers import keyed_api, master_key

__all__ = ["api", "keyed_api", "master_key"]


async def _world(api: Api) -> dict[str, Any]:
    async with api.db.engine.begin() as conn:
        a = await companies.create_company(conn, name="Acme", team_names=["Eng"])
        b = await companies.create_company(conn, name="Beta", team_names=["Eng"])
        ada = await agents.hire_agent(conn, company="acme", name="ada", role="dev", adapter="process")
        task = await tasks.create_task(conn, company="acme", title="Ship it", agent="ada")
        # What ada did: two approval events and a progress event, by the agent.
        for action in ("approval.requested", "approval.answered", "task.progress"):
            await audit.record(
                conn,
                actor=f"agent:{ada['id']}",
                action=action,
                subject_type="task",
                subject_id=task["id"],
                company_id=a["id"],
                payload={"note": action},
            )
        await tasks.create_task(conn, company="beta", title="Beta's own")
    return {"a": a, "b": b, "ada": ada, "task": task}


async def _get(api: Api, token: str, path: str, **params: Any) -> Any:
    response = await api.call("GET", path, token, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_search_with_the_product_keys_and_keyset_pages(api: Api) -> None:
    w = await _world(api)
    token = await api.token("read")
    base = "/v1/companies/acme/activity"

    found = await _get(api, token, base, q="agent:ada category:approval since:7d")
    assert [(e["action"], e["actor"]) for e in found["data"]] == [
        ("approval.answered", f"agent:{w['ada']['id']}"),
        ("approval.requested", f"agent:{w['ada']['id']}"),
    ]
    entry = found["data"][0]
    assert entry["category"] == "approval" and entry["companyId"] == str(w["a"]["id"])
    assert entry["subject"] == {"type": "task", "id": str(w["task"]["id"])}
    assert entry["payload"] == {"note": "approval.answered"}

    # The same keys as parameters; q and parameters combine, and every term must hold.
    by_params = await _get(api, token, base, q="agent:ada", category="approval")
    assert [e["id"] for e in by_params["data"]] == [e["id"] for e in found["data"]]
    week_ago = (datetime.now(UTC) - timedelta(days=7)).isoformat()
    by_time = await _get(api, token, base, q="agent:ada category:approval", since=week_ago)
    assert [e["id"] for e in by_time["data"]] == [e["id"] for e in found["data"]]
    narrowed = await _get(api, token, base, q="category:approval action:approval.requested actor:agent:")
    assert [e["action"] for e in narrowed["data"]] == ["approval.requested"]
    same_twice = await _get(api, token, base, q=f"agent:ada actor:agent:{w['ada']['id']} actor:agent:")
    assert len(same_twice["data"]) == 3
    for impossible in (
        {"q": "agent:ada actor:user:local"},
        {"q": "category:approval", "category": "task"},
        {"q": "category:task action:approval.requested"},
        {"q": "task:abc123 run:abc123"},
    ):
        assert (await _get(api, token, base, **impossible))["data"] == [], impossible
    about_task = await _get(api, token, base, q=f"task:{str(w['task']['id'])[:8]}")
    assert {e["action"] for e in about_task["data"]} >= {"task.created", "approval.requested"}
    assert all(e["subject"]["id"] == str(w["task"]["id"]) for e in about_task["data"])
    assert (await _get(api, token, base, since="2099-01-01T00:00:00Z"))["data"] == []
    assert (await _get(api, token, base, q="until:1h"))["data"] == []

    # Only Acme's events, newest first, a page at a time; the pages add up to the whole, once each.
    everything = await _get(api, token, base, limit=200)
    ids = [e["id"] for e in everything["data"]]
    assert ids == sorted(ids, reverse=True) and not everything["meta"]["hasMore"]
    assert {e["companyId"] for e in everything["data"]} == {str(w["a"]["id"])}
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        got = await _get(api, token, base, **params)
        seen += [e["id"] for e in got["data"]]
        cursor = got["meta"]["nextCursor"]
        assert got["meta"]["hasMore"] == (cursor is not None)
        if cursor is None:
            break
    assert seen == ids

    one = await _get(api, token, f"/v1/activity/{ids[0]}")
    assert one["data"] == everything["data"][0]


async def test_bad_searches_are_422(api: Api) -> None:
    await _world(api)
    token = await api.token("read")
    base = "/v1/companies/acme/activity"
    for params in (
        {"q": "colour:blue"},  # not a search key
        {"q": "ada"},  # not key:value
        {"q": "since:yesterday"},
        {"since": "7d"},  # relative times go in q; the parameter is an ISO time
        {"category": "approval.requested"},  # a category is one word
        {"cursor": "c_1_2"},
        {"limit": 0},
    ):
        response = await api.call("GET", base, token, params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.json()["error"]["code"] == "invalid_input"
    missing = await api.call("GET", base, token, params={"q": "agent:nobody"})
    assert missing.status_code == 404
    assert (await api.call("GET", "/v1/activity/0", token)).status_code == 422
    assert (await api.call("GET", f"{base}/export", token, params={"format": "pdf"})).status_code == 422


async def test_exports_stream_jsonl_and_csv_oldest_first(api: Api) -> None:
    w = await _world(api)
    token = await api.token("read")
    base = "/v1/companies/acme/activity/export"

    jsonl = await api.call("GET", base, token, params={"q": "agent:ada"})
    assert jsonl.status_code == 200 and jsonl.headers["content-type"].startswith("application/x-ndjson")
    records = [json.loads(line) for line in jsonl.text.splitlines()]
    assert [r["action"] for r in records] == ["approval.requested", "approval.answered", "task.progress"]
    assert {r["companyId"] for r in records} == {str(w["a"]["id"])}

    as_csv = await api.call("GET", base, token, params={"format": "csv", "category": "approval"})
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [r["action"] for r in rows] == ["approval.requested", "approval.answered"]
    assert json.loads(rows[0]["payload"]) == {"note": "approval.requested"}


async def test_scopes_and_other_companies(api: Api) -> None:
    w = await _world(api)
    scoped = await api.token("read", f"company:{w['a']['id']}")
    reader = await api.token("read")
    async with api.db.engine.connect() as conn:
        rows = await audit_query.list_events(conn, audit_query.AuditFilter(company_id=w["b"]["id"]))
        above = await audit_query.list_events(conn, audit_query.AuditFilter(action="api_token"))
    beta_event = rows[0]["id"]
    assert (await api.call("GET", "/v1/companies/acme/activity", scoped)).status_code == 200
    for path in (
        "/v1/companies/beta/activity",
        "/v1/companies/beta/activity/export",
        f"/v1/activity/{beta_event}",
    ):
        assert (await api.call("GET", path, scoped)).status_code == 404, path
    scoped_admin = await api.token("admin", f"company:{w['a']['id']}")
    assert (await api.call("GET", "/v1/companies/beta/audit", scoped_admin)).status_code == 404
    assert (await api.call("GET", "/v1/companies/acme/audit", scoped_admin)).status_code == 200
    # A token's own creation is above any company: a company-scoped token does not see it.
    assert above, "creating a token records an event"
    assert (await api.call("GET", f"/v1/activity/{above[0]['id']}", scoped)).status_code == 404
    assert (await api.call("GET", f"/v1/activity/{above[0]['id']}", reader)).status_code == 200
    assert (await api.call("GET", f"/v1/activity/{beta_event}", reader)).status_code == 200
    # The audit verification reads the whole chain and the keys: admin only.
    assert (await api.call("GET", "/v1/companies/acme/audit", reader)).status_code == 403
    assert (await api.call("GET", "/v1/companies/acme/activity", None)).status_code == 401


async def test_audit_status_verifies_seals_and_names_a_changed_event(
    keyed_api: Api, master_key: MasterKey
) -> None:
    api = keyed_api
    w = await _world(api)
    admin = await api.token("admin")
    async with api.db.engine.begin() as conn:
        assert await seal_pending(conn, master_key) > 0

    status = (await _get(api, admin, "/v1/companies/acme/audit"))["data"]
    assert status["ok"] is True and status["problems"] == [] and status["firstProblem"] is None
    assert status["sealedEvents"] == status["eventsChecked"] > 0 and status["unproven"] == 0
    assert status["keyIds"] == [master_key.key_id] and status["headSealHash"]

    async with api.db.engine.connect() as conn:
        mine = await audit_query.list_events(
            conn, audit_query.AuditFilter(company_id=w["a"]["id"], action="approval")
        )
    changed = mine[0]["id"]
    # As the superuser, with the append-only triggers off: what an intruder with the database can do.
    with psycopg.connect(libpq_url(api.db.url), autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute('UPDATE audit_events SET payload = \'{"note": "forged"}\' WHERE id = %s', (changed,))
    status = (await _get(api, admin, "/v1/companies/acme/audit"))["data"]
    assert status["ok"] is False
    assert status["firstProblem"]["eventId"] == changed
