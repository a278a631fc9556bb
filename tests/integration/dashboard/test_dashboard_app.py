"""The dashboard app on a real database through its ASGI interface: the guards (Host, CSRF, headers),
every page rendering, the forms acting through the domain, and no secret or token in any page."""

from __future__ import annotations

import os
import re

import httpx

from company_agents import identity, secrets_store
from company_agents.agents import get_agent
from company_agents.dashboard.security import CSP
from company_agents.master_key import MasterKey
from tests.integration.dashboard.harness import BASE, PORT, Dash

SECRET = "sk-live-DASHBOARD-NEVER-SHOWS-7e1d"
NEW_PAGES = ["/c/acme/agents/ada", "/c/acme/org", "/c/acme/activity", "/c/acme/memory", "/c/acme/settings"]


async def _company_with_agent(dash: Dash) -> None:
    created = await dash.post("/companies", {"name": "Acme", "teams": "Eng", "budget_usd": "50"})
    assert created.status_code == 303 and created.headers["location"] == "/c/acme"
    hired = await dash.post(
        "/c/acme/agents", {"name": "ada", "role": "writer", "adapter": "example", "team": "Eng"}
    )
    assert hired.status_code == 303, hired.text


async def test_a_foreign_host_is_refused_before_anything_runs(dash: Dash) -> None:
    for host in ("evil.example:3101", "127.0.0.1:9999", "localhost", ""):
        response = await dash.client.get("/", headers={"Host": host})
        assert response.status_code == 400, host
    assert (await dash.client.get("/", headers={"Host": f"localhost:{PORT}"})).status_code == 200


async def test_only_the_browser_that_opened_the_link_gets_in(dash: Dash) -> None:
    transport = dash.client._transport  # the same app, a client without the cookie (another process)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as other:
        for path in ["/", "/c/acme", "/c/acme/live", "/c/acme/badge"]:
            assert (await other.get(path)).status_code == 401, path
        refused = await other.post("/companies", data={"name": "Acme", "csrf_token": dash.csrf})
        assert refused.status_code == 401
        assert (await other.get("/?token=guess")).status_code == 401
        other.cookies.set("ca_dashboard", "guess")
        assert (await other.get("/")).status_code == 401
        assert (await other.get("/static/vendor/manifest.json")).status_code == 200  # nothing private
        other.cookies.clear()
        entered = await other.get(f"/c/acme/tasks?token={dash.access}&part=live")
        assert entered.status_code == 303 and entered.headers["location"] == "/c/acme/tasks?part=live"
        cookie = entered.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        assert (await other.get("/")).status_code == 200
    # Neither token is in a page's links (the access token only ever travels in the cookie).
    assert dash.access not in (await dash.client.get("/")).text


async def test_a_post_without_the_csrf_token_is_refused(dash: Dash) -> None:
    refused = await dash.post("/companies", {"name": "Acme"}, csrf=False)
    assert refused.status_code == 403
    wrong = await dash.client.post("/companies", data={"name": "Acme", "csrf_token": "guess"})
    assert wrong.status_code == 403
    as_json = await dash.client.post("/companies", json={"name": "Acme", "csrf_token": dash.csrf})
    assert as_json.status_code == 403  # only a form or the header carries it
    home = (await dash.client.get("/")).text
    assert "Acme" not in home  # nothing was created
    # htmx sends it as a header (hx-headers on <body>): that works too.
    ok = await dash.client.post("/companies", data={"name": "Acme"}, headers={"X-CSRF-Token": dash.csrf})
    assert ok.status_code == 303


async def test_every_response_has_the_csp_and_no_inline_script(dash: Dash) -> None:
    await _company_with_agent(dash)
    for path in [
        "/",
        "/c/acme",
        "/c/acme/tasks",
        "/c/acme/agents",
        "/c/acme/inbox",
        "/c/acme/costs",
        *NEW_PAGES,
    ]:
        response = await dash.client.get(path)
        assert response.status_code == 200, (path, response.text)
        assert response.headers["content-security-policy"] == CSP
        assert "script-src 'self'" in CSP and "frame-ancestors 'none'" in CSP
        assert response.headers["x-frame-options"] == "DENY"
        # Every <script> loads a file of ours; no inline handler or style attribute anywhere.
        assert all(re.search(r'src="/static/', tag) for tag in re.findall(r"<script[^>]*>", response.text))
        assert not re.search(r"\son[a-z]+=", response.text) and " style=" not in response.text
    missing = await dash.client.get("/c/nobody")
    assert missing.status_code == 404 and "no company" in missing.text
    assert missing.headers["content-security-policy"] == CSP


async def test_forms_act_through_the_domain_and_pages_show_the_result(dash: Dash) -> None:
    await _company_with_agent(dash)
    created = await dash.post("/c/acme/tasks", {"title": "Write the README", "body": "hi", "team": "Eng"})
    assert created.status_code == 303
    task_path = created.headers["location"]
    assert re.fullmatch(r"/c/acme/tasks/[0-9a-f-]{36}", task_path)
    board = (await dash.client.get("/c/acme/tasks")).text
    assert "Write the README" in board and 'id="col-queued"' in board
    live = (await dash.client.get("/c/acme/tasks?part=live")).text
    assert "<html" not in live and "Write the README" in live
    detail = (await dash.client.get(task_path)).text
    assert 'id="task-status"' in detail and "queued" in detail
    cancelled = await dash.post(f"{task_path}/cancel", {})
    assert cancelled.status_code == 303
    assert "cancelled" in (await dash.client.get(f"{task_path}?part=live")).text
    # An illegal move is a page with the domain's message, not a 500.
    again = await dash.post(f"{task_path}/approve", {})
    assert again.status_code == 409 and "<html" in again.text
    paused = await dash.post("/c/acme/agents/ada/pause", {})
    assert paused.status_code == 303
    assert "Resume" in (await dash.client.get("/c/acme/agents")).text
    overview = (await dash.client.get("/c/acme")).text
    assert 'id="in-flight"' in overview and "<svg" in overview and "Eng" in overview


async def test_bad_input_is_a_readable_error(dash: Dash) -> None:
    await _company_with_agent(dash)
    assert (await dash.post("/companies", {"name": ""})).status_code == 422
    assert (await dash.post("/companies", {"name": "X", "budget_usd": "lots"})).status_code == 422
    assert (await dash.post("/c/acme/tasks", {"title": "t", "priority": "high"})).status_code == 422
    assert (await dash.post("/c/acme/agents/ada/explode", {})).status_code == 404
    assert (await dash.post("/c/acme/tasks", {"title": "t", "agent": "nobody"})).status_code == 404
    more = await dash.client.get("/c/acme/tasks/more", params={"status": "queued", "cursor": "bogus"})
    assert more.status_code == 422


async def test_show_more_pages_a_column_by_keyset(dash: Dash) -> None:
    await _company_with_agent(dash)
    for i in range(23):
        await dash.post("/c/acme/tasks", {"title": f"task {i:02d}", "team": "Eng"})
    board = (await dash.client.get("/c/acme/tasks")).text
    match = re.search(r'hx-get="(/c/acme/tasks/more\?status=queued&amp;cursor=[^"]+)"', board)
    assert match, "a full column offers more"
    assert "task 22" in board and "task 02" not in board  # newest first, 20 a page
    more = (await dash.client.get(match.group(1).replace("&amp;", "&"))).text
    assert all(f"task {i:02d}" in more for i in range(3)) and "task 03" not in more
    assert "Show more" not in more  # the last page


async def test_no_page_renders_a_secret_or_an_identity_token(dash: Dash) -> None:
    await _company_with_agent(dash)
    key = MasterKey(os.urandom(32), "test")
    async with dash.db.engine.begin() as conn:
        company = (await conn.exec_driver_sql("SELECT id FROM companies WHERE slug = 'acme'")).one()
        await secrets_store.create_secret(conn, key, company_id=company[0], name="api_key", value=SECRET)
        agent = await get_agent(conn, company[0], "ada")
        token = await identity.rotate_agent_token(conn, agent)
    await dash.post("/c/acme/tasks", {"title": "use the key", "team": "Eng"})
    paths = ["/", "/c/acme", "/c/acme/tasks", "/c/acme/agents", "/c/acme/inbox", "/c/acme/costs", *NEW_PAGES]
    board = (await dash.client.get("/c/acme/tasks")).text
    paths += re.findall(r'href="(/c/acme/tasks/[0-9a-f-]{36})"', board)
    for path in paths:
        for url in (path, f"{path}?part=live"):
            html = (await dash.client.get(url)).text
            assert SECRET not in html and token not in html and dash.access not in html, url
