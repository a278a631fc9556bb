"""The dashboard's agent, org chart, activity and memory pages, and the top-up, through the ASGI app
on a real database: what each page shows, its labelled controls, and its actions through the domain."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest

from company_agents import leases
from company_agents.agents import get_agent
from company_agents.approvals import store
from company_agents.dashboard import pages
from company_agents.memory import write_memory
from company_agents.tokens import AGENT_TOKEN_PREFIX
from tests.integration.dashboard.harness import Dash


async def _company(dash: Dash) -> None:
    created = await dash.post("/companies", {"name": "Acme", "teams": "Eng,Ops", "budget_usd": "100"})
    assert created.status_code == 303
    for name, team, boss in (("ada", "Eng", ""), ("bob", "Eng", "ada"), ("cy", "Ops", "ada")):
        hired = await dash.post(
            "/c/acme/agents",
            {"name": name, "role": "writer", "adapter": "example", "team": team, "reports_to": boss},
        )
        assert hired.status_code == 303, hired.text


def _labelled_controls(html: str) -> None:
    """Every input and select sits in a <label>; every button has text or an aria-label."""
    for form in re.findall(r"<form.*?</form>", html, flags=re.S):
        hidden = re.sub(r'<input type="hidden"[^>]*>', "", form)
        inputs = len(re.findall(r"<(?:input|select|textarea)\b", hidden))
        assert inputs <= len(re.findall(r"<label\b", hidden)), form
    for button in re.findall(r"<button[^>]*>(.*?)</button>", html, flags=re.S):
        assert button.strip(), html


async def test_the_agent_page_shows_details_runs_costs_and_acts(dash: Dash) -> None:
    await _company(dash)
    page = await dash.client.get("/c/acme/agents/bob")
    assert page.status_code == 200, page.text
    html = page.text
    assert 'id="agent-status"' in html and ">idle<" in html
    assert 'href="/c/acme/agents/ada">ada</a>' in html  # reports to
    assert 'id="agent-runs"' in html and "no run yet" in html
    assert 'id="agent-usd"' in html and "$0.00" in html
    assert 'aria-label="Pause bob"' in html and 'aria-label="Retire bob"' in html
    _labelled_controls(html)
    assert 'href="/c/acme/agents/bob"' in (await dash.client.get("/c/acme/agents")).text

    paused = await dash.post("/c/acme/agents/bob/pause", {"next": "agent"})
    assert paused.status_code == 303 and paused.headers["location"] == "/c/acme/agents/bob"
    assert 'aria-label="Resume bob"' in (await dash.client.get("/c/acme/agents/bob?part=live")).text
    assert (await dash.post("/c/acme/agents/bob/resume", {"next": "agent"})).status_code == 303

    async with dash.db.engine.connect() as conn:
        company_id = (await conn.exec_driver_sql("SELECT id FROM companies WHERE slug='acme'")).scalar_one()
        before = (await get_agent(conn, company_id, "bob"))["token_hash"]
    rotated = await dash.post("/c/acme/agents/bob/rotate-token", {})
    assert rotated.status_code == 303 and rotated.headers["location"] == "/c/acme/agents/bob?rotated=1"
    async with dash.db.engine.connect() as conn:
        after = await get_agent(conn, company_id, "bob")
    assert after["token_hash"] != before and after["token_rotated_at"] is not None
    shown = (await dash.client.get(rotated.headers["location"])).text
    assert 'id="rotated"' in shown and after["token_hash"] not in shown
    assert not re.search(AGENT_TOKEN_PREFIX + r"[A-Za-z0-9_-]{16,}", shown)
    # Without the CSRF token nothing rotates.
    assert (await dash.post("/c/acme/agents/bob/rotate-token", {}, csrf=False)).status_code == 403

    retired = await dash.post("/c/acme/agents/bob/retire", {"next": "agent"})
    assert retired.status_code == 303
    assert "Retired: no action left." in (await dash.client.get("/c/acme/agents/bob")).text
    assert (await dash.client.get("/c/acme/agents/nobody")).status_code == 404
    assert (await dash.client.get("/c/acme/agents/-bad")).status_code == 422


async def test_a_team_is_topped_up_from_the_costs_page(dash: Dash) -> None:
    await _company(dash)
    page = (await dash.client.get("/c/acme/costs")).text
    assert 'action="/c/acme/costs/topup"' in page and "$20.00 of $20.00" in page  # 20% of the cap
    _labelled_controls(page)
    done = await dash.post("/c/acme/costs/topup", {"team": "Eng", "usd": "5", "reason": "launch"})
    assert done.status_code == 303 and done.headers["location"] == "/c/acme/costs"
    assert "$15.00 of $20.00" in (await dash.client.get("/c/acme/costs")).text
    too_much = await dash.post("/c/acme/costs/topup", {"team": "Eng", "usd": "50"})
    assert too_much.status_code == 409 and "reserve" in too_much.text
    assert (await dash.post("/c/acme/costs/topup", {"team": "Eng", "usd": "-1"})).status_code == 422
    assert (await dash.post("/c/acme/costs/topup", {"team": "Eng"})).status_code == 422
    assert (await dash.post("/c/acme/costs/topup", {"team": "Nope", "usd": "1"})).status_code == 404
    assert (
        await dash.post("/c/acme/costs/topup", {"team": "Eng", "usd": "1"}, csrf=False)
    ).status_code == 403


async def test_the_org_chart_draws_teams_agents_and_reporting_lines(dash: Dash) -> None:
    await _company(dash)
    html = (await dash.client.get("/c/acme/org")).text
    svg = re.search(r'<svg class="org".*?</svg>', html, flags=re.S)
    assert svg, html
    chart = svg.group(0)
    assert 'aria-label="Org chart: 2 teams, 3 agents"' in chart
    assert ">Eng<" in chart and ">Ops<" in chart
    assert all(f'data-agent="{n}"' in chart for n in ("ada", "bob", "cy"))
    assert chart.count('class="reports"') == 2  # bob and cy report to ada
    assert 'href="/c/acme/agents/cy"' in chart
    assert "cy</a> (writer), reports to ada" in html  # the same, as text
    assert 'href="/c/acme/org" aria-current="page"' in html


async def test_activity_searches_with_the_product_keys_pages_and_exports(dash: Dash) -> None:
    await _company(dash)
    for i in range(55):
        await dash.post("/c/acme/tasks", {"title": f"t{i}", "team": "Eng"})
    await dash.post("/c/acme/agents/bob/pause", {})
    html = (await dash.client.get("/c/acme/activity")).text
    assert 'type="search" name="q"' in html and "agent:ada category:approval since:7d" in html
    rows = re.findall(r'<tr data-event="(\d+)">', html)
    assert len(rows) == 50
    more = re.search(r'hx-get="(/c/acme/activity\?q=&amp;before=\d+)"', html)
    assert more, "a full page offers more"
    rest = (await dash.client.get(more.group(1).replace("&amp;", "&"))).text
    older = re.findall(r'<tr data-event="(\d+)">', rest)
    assert older and max(map(int, older)) < min(map(int, rows)) and "<html" not in rest

    paused = (await dash.client.get("/c/acme/activity", params={"q": "category:agent since:1h"})).text
    actions = re.findall(r"<td>(agent\.[a-z_]+)</td>", paused)
    assert "agent.paused" in actions or "agent.status_changed" in actions, paused
    assert "task.created" not in paused
    tasks_only = (await dash.client.get("/c/acme/activity", params={"q": "action:task.created"})).text
    assert len(re.findall(r"<td>task.created</td>", tasks_only)) == 50
    # agent:NAME is the agent's own doing: the user hired and paused, so ada has done nothing yet.
    by_ada = (await dash.client.get("/c/acme/activity", params={"q": "agent:ada"})).text
    assert "No activity matching this search." in by_ada and "data-event" not in by_ada
    for bad in ("nonsense", "colour:red", "since:yesterday"):
        assert (await dash.client.get("/c/acme/activity", params={"q": bad})).status_code == 422, bad
    assert (await dash.client.get("/c/acme/activity", params={"q": "agent:nobody"})).status_code == 404

    jsonl = await dash.client.get("/c/acme/activity/export.jsonl", params={"q": "action:task.created"})
    assert jsonl.status_code == 200 and "attachment" in jsonl.headers["content-disposition"]
    records = [json.loads(line) for line in jsonl.text.splitlines()]
    assert len(records) == 55 and {r["action"] for r in records} == {"task.created"}
    csv = await dash.client.get("/c/acme/activity/export.csv")
    assert csv.status_code == 200 and csv.text.startswith("id,companyId,at,actor,action")
    assert 'id="export-csv"' in html
    assert (await dash.client.get("/c/acme/activity/export.xml")).status_code in (404, 422)
    assert (await dash.client.get("/c/acme/activity/export.csv", params={"q": "x"})).status_code == 422


async def test_the_memory_inspector_lists_the_latest_entry_per_topic(
    dash: Dash, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _company(dash)
    async with dash.db.engine.begin() as conn:
        company_id = (await conn.exec_driver_sql("SELECT id FROM companies WHERE slug='acme'")).scalar_one()
        ada = await get_agent(conn, company_id, "ada")
        for body in ("first draft", "second draft"):
            await write_memory(
                conn, company_id=company_id, scope="company", scope_id=company_id, topic="style", body=body
            )
        await write_memory(
            conn,
            company_id=company_id,
            scope="agent",
            scope_id=ada["id"],
            topic="notes",
            body="ada remembers",
            source_agent_id=ada["id"],
        )
    html = (await dash.client.get("/c/acme/memory")).text
    assert "second draft" in html and "first draft" not in html and "ada remembers" in html
    _labelled_controls(html)
    only_agent = (await dash.client.get("/c/acme/memory", params={"scope": "agent"})).text
    assert "ada remembers" in only_agent and "second draft" not in only_agent
    assert (await dash.client.get("/c/acme/memory", params={"scope": "galaxy"})).status_code == 422
    assert 'id="memory-cut"' not in html
    monkeypatch.setattr(pages, "MEMORY_PAGE", 1)  # a large memory is never loaded whole
    cut = (await dash.client.get("/c/acme/memory")).text
    assert 'id="memory-cut"' in cut and len(re.findall(r"<tr><td>(?:company|agent)</td>", cut)) == 1


async def _pending_approval(dash: Dash) -> str:
    """ada (her policy sends a spend over $10 to a person) asks to spend on a task: one inbox card."""
    created = await dash.post("/companies", {"name": "Acme", "teams": "Eng"})
    assert created.status_code == 303
    hired = await dash.post(
        "/c/acme/agents",
        {"name": "ada", "role": "writer", "adapter": "example", "team": "Eng", "approvals": "spend_over:10"},
    )
    assert hired.status_code == 303
    assert (await dash.post("/c/acme/tasks", {"title": "buy ads", "agent": "ada"})).status_code == 303
    async with dash.db.engine.begin() as conn:
        company_id = (await conn.exec_driver_sql("SELECT id FROM companies WHERE slug='acme'")).scalar_one()
        ada = await get_agent(conn, company_id, "ada")
        (claim,) = await leases.claim(conn, agent_id=ada["id"], holder="test", lease_seconds=60)
        row, created_now = await store.request(
            conn,
            claim.identity(),
            fencing_token=claim.fencing_token,
            new=store.NewApproval(action="spend on ads", cost_usd=Decimal("40")),
            expiry_seconds=3600,
        )
    assert created_now and row["status"] == "pending"
    return str(row["id"])


async def test_an_approval_is_approved_with_edits_from_its_inbox_card(dash: Dash) -> None:
    approval = await _pending_approval(dash)
    html = (await dash.client.get("/c/acme/inbox")).text
    assert f'id="edits-{approval}"' in html and "Approve with edits" in html
    _labelled_controls(html)
    base = f"/c/acme/approvals/{approval}"
    for bad in ("not json", "[1, 2]", "{}"):
        refused = await dash.post(f"{base}/approve", {"edits": bad})
        assert refused.status_code == 422 and "JSON object" in refused.text, bad
    done = await dash.post(f"{base}/approve", {"edits": '{"cost.usd": 30}'})
    assert done.status_code == 303
    async with dash.db.engine.connect() as conn:
        decided = await store.get_approval(conn, approval)
    assert decided["status"] == "approved_with_edits" and decided["edits"] == {"cost.usd": 30}
    assert (await dash.post(f"{base}/approve", {})).status_code == 409  # answered once


async def test_a_question_is_asked_from_an_inbox_card(dash: Dash) -> None:
    approval = await _pending_approval(dash)
    base = f"/c/acme/approvals/{approval}"
    assert (await dash.post(f"{base}/ask", {"text": ""})).status_code == 422
    assert (await dash.post(f"{base}/ask", {"text": "which channel?"})).status_code == 303
    async with dash.db.engine.connect() as conn:
        assert (await store.get_approval(conn, approval))["status"] == "asked_question"


async def test_the_hire_form_takes_an_approval_policy_in_the_product_s_words(dash: Dash) -> None:
    assert (await dash.post("/companies", {"name": "Acme"})).status_code == 303
    page = (await dash.client.get("/c/acme/agents")).text
    assert 'name="approvals" list="approval-policies"' in page and '<option value="all">' in page
    ok = await dash.post(
        "/c/acme/agents", {"name": "ada", "role": "r", "adapter": "example", "approvals": "all"}
    )
    assert ok.status_code == 303
    bad = await dash.post(
        "/c/acme/agents", {"name": "bob", "role": "r", "adapter": "example", "approvals": "ask"}
    )
    assert bad.status_code == 422 and "unknown approval category" in bad.text
