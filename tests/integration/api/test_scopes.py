"""The scope matrix: each kind of token against each route family, across companies, and agents' tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from company_agents import agents, api_tokens, companies, leases, tasks
from tests.integration.api.helpers import Api, api

__all__ = ["api"]


async def _world(api: Api) -> dict[str, Any]:
    async with api.db.engine.begin() as conn:
        a = await companies.create_company(conn, name="Acme", team_names=["Eng"])
        b = await companies.create_company(conn, name="Beta", team_names=["Eng"])
        worker = await agents.hire_agent(conn, company="acme", name="ada", role="dev", adapter="process")
        await agents.hire_agent(conn, company="beta", name="bob", role="dev", adapter="process")
        task_a = await tasks.create_task(conn, company="acme", title="A's task", agent="ada")
        task_b = await tasks.create_task(conn, company="beta", title="B's task")
    return {"a": a, "b": b, "worker": worker, "task_a": task_a, "task_b": task_b}


def _reads(w: dict[str, Any], slug: str, task: dict[str, Any], agent: str) -> list[str]:
    return [
        f"/v1/companies/{slug}",
        f"/v1/companies/{slug}/teams",
        f"/v1/companies/{slug}/agents",
        f"/v1/companies/{slug}/agents/{agent}",
        f"/v1/companies/{slug}/tasks",
        f"/v1/companies/{slug}/runs",
        f"/v1/companies/{slug}/overview",
        f"/v1/tasks/{task['id']}",
        f"/v1/tasks/{task['id']}/runs",
        f"/v1/tasks/{task['id']}/comments",
        f"/v1/companies/{slug}/approval-rules",
        f"/v1/companies/{slug}/costs/entries",
        f"/v1/companies/{slug}/costs/forecast",
        f"/v1/companies/{slug}/costs/export",
    ]


def _writes(slug: str, task: dict[str, Any]) -> list[tuple[str, str, dict[str, Any] | None]]:
    agent = "ada" if slug == "acme" else "bob"
    return [
        ("PATCH", f"/v1/companies/{slug}", {"description": "changed"}),
        ("PATCH", f"/v1/companies/{slug}/agents/{agent}", {"role": "changed"}),
        ("POST", f"/v1/tasks/{task['id']}/assign", {"agent": agent}),
        ("POST", f"/v1/tasks/{task['id']}/comments", {"body": "a note"}),
        ("POST", f"/v1/companies/{slug}/teams", {"name": f"Team {slug}"}),
        ("POST", f"/v1/companies/{slug}/tasks", {"title": "New"}),
        ("POST", f"/v1/tasks/{task['id']}/cancel", None),
    ]


async def _statuses(api: Api, token: str, calls: list[tuple[str, str, Any]]) -> set[int]:
    out = set()
    for method, path, body in calls:
        response = (
            await api.call(method, path, token, json=body)
            if body is not None
            else await api.call(method, path, token)
        )
        out.add(response.status_code)
    return out


@pytest.mark.parametrize(
    ("scopes", "own_read", "own_write", "other", "create_company"),
    [
        (["read"], {200}, {403}, {200}, 403),
        (["write"], {200}, {200, 201}, {200}, 201),
        (["admin"], {200}, {200, 201}, {200}, 201),
        (["read", "write", "company:A"], {200}, {200, 201}, {404}, 403),
        (["company:A"], {200}, {200, 201}, {404}, 403),
        (["company:A:read"], {200}, {403}, {404}, 403),
        (["company:A:write"], {200}, {200, 201}, {404}, 403),
    ],
)
async def test_scope_matrix(
    api: Api, scopes: list[str], own_read: set[int], own_write: set[int], other: set[int], create_company: int
) -> None:
    w = await _world(api)
    resolved = [s.replace(":A", f":{w['a']['id']}") for s in scopes]
    token = await api.token(*resolved)
    reads_a = [("GET", p, None) for p in _reads(w, "acme", w["task_a"], "ada")]
    reads_b = [("GET", p, None) for p in _reads(w, "beta", w["task_b"], "bob")]
    assert await _statuses(api, token, reads_a) == own_read
    assert await _statuses(api, token, reads_b) == other  # 404: not "forbidden", it does not exist
    if other == {404}:
        missing = await api.call("GET", "/v1/companies/nope", token)
        hidden = await api.call("GET", "/v1/companies/beta", token)
        assert hidden.json()["error"]["code"] == missing.json()["error"]["code"] == "not_found"
        # The scope is checked first: a read-only token gets 403 wherever it writes.
        expected = {403} if own_write == {403} else {404}
        assert await _statuses(api, token, list(_writes("beta", w["task_b"]))) == expected
        listed = (await api.call("GET", "/v1/companies", token)).json()["data"]
        assert [c["slug"] for c in listed] == ["acme"]
    assert await _statuses(api, token, list(_writes("acme", w["task_a"]))) == own_write
    created = await api.call("POST", "/v1/companies", token, json={"name": "Gamma"})
    assert created.status_code == create_company, created.text


async def test_agents_tokens_are_refused_everywhere(api: Api) -> None:
    """An agent must not act through the API (it could approve its own work): its identity token and
    its lease token are both 401 on every family, the approve route included."""
    w = await _world(api)
    async with api.db.engine.begin() as conn:
        (claim,) = await leases.claim(conn, agent_id=w["worker"]["id"], holder="t", lease_seconds=60)
    identity_token = w["worker"]["token"]
    calls = [("GET", p, None) for p in _reads(w, "acme", w["task_a"], "ada")]
    calls += [("POST", f"/v1/tasks/{w['task_a']['id']}/approve", None), ("GET", "/v1/whoami", None)]
    for token in (identity_token, claim.lease_token):
        assert await _statuses(api, token, calls) == {401}


async def test_revoked_expired_and_rotated_tokens_are_401(api: Api) -> None:
    async with api.db.engine.begin() as conn:
        revoked_row, revoked = await api_tokens.create_token(conn, name="r", scopes=["read"])
        await api_tokens.revoke_token(conn, revoked_row["id"])
        _, expired = await api_tokens.create_token(
            conn, name="e", scopes=["read"], expires_at=datetime.now(UTC) - timedelta(seconds=1)
        )
        rotated_row, old = await api_tokens.create_token(conn, name="o", scopes=["read"])
        _, new = await api_tokens.rotate_token(conn, rotated_row["id"])
    for token in (revoked, expired, old):
        assert (await api.call("GET", "/v1/whoami", token)).status_code == 401
    whoami = await api.call("GET", "/v1/whoami", new)
    assert whoami.status_code == 200 and whoami.json()["data"]["tokenId"] == str(rotated_row["id"])
    async with api.db.engine.connect() as conn:
        used = (
            await conn.execute(
                text("SELECT last_used_at FROM api_tokens WHERE id = :i"), {"i": rotated_row["id"]}
            )
        ).scalar_one()
    assert used is not None


async def test_request_log_names_the_token_id_never_the_token(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    token = await api.token("read")
    with caplog.at_level("INFO", logger="company_agents.api.access"):
        response = await api.call("GET", "/v1/whoami", token)
    records = [r for r in caplog.records if getattr(r, "action", None) == "api_request"]
    assert records and records[-1].tokenId == response.json()["data"]["tokenId"]  # type: ignore[attr-defined]
    assert token not in caplog.text and all(token not in str(r.__dict__) for r in caplog.records)
