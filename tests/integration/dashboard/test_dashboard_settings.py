"""The dashboard's settings page: backups made and checked, secrets set / rotated / deleted without a
value ever coming back, API tokens created (shown once) and revoked, the read-only runtime figures."""

from __future__ import annotations

import os
import re

from company_agents.master_key import MasterKey
from tests.integration.dashboard.harness import Dash

VALUE = "sk-SETTINGS-PAGE-NEVER-SHOWS-91ab"
ROTATED = "sk-SETTINGS-ROTATED-NEVER-SHOWS-77cd"


async def _company(dash: Dash) -> None:
    assert (await dash.post("/companies", {"name": "Acme", "teams": "Eng"})).status_code == 303


async def test_settings_shows_every_section_with_labelled_controls(dash: Dash) -> None:
    await _company(dash)
    page = await dash.client.get("/c/acme/settings")
    assert page.status_code == 200, page.text
    html = page.text
    for section in ("h-backups", "h-secrets", "h-integrations", "h-tokens", "h-pricing", "h-runtime"):
        assert f'id="{section}"' in html, section
    assert "100 tool calls a run" in html and "<dd>auto</dd>" in html
    assert "No backup yet." in html and "No secret yet." in html
    for form in re.findall(r"<form.*?</form>", html, flags=re.S):
        visible = re.sub(r'<input type="hidden"[^>]*>', "", form)
        assert len(re.findall(r"<(?:input|select)\b", visible)) <= len(re.findall(r"<label\b", visible))
        assert 'name="csrf_token"' in form
    assert 'href="/c/acme/settings" aria-current="page"' in html


async def test_secrets_are_set_rotated_and_deleted_and_no_value_is_rendered(dash: Dash) -> None:
    await _company(dash)
    # Without a master key in the home (`up` makes one), setting one is the error page saying so
    # (the domain's MasterKeyError, a setup fault of the server), and the value is not echoed.
    refused = await dash.post("/c/acme/settings/secrets", {"name": "api_key", "value": VALUE})
    assert "<html" in refused.text and "master key" in refused.text.lower(), refused.text
    assert VALUE not in refused.text
    dash.app.state.master_key = MasterKey(os.urandom(32), "test")
    made = await dash.post(
        "/c/acme/settings/secrets", {"name": "api_key", "value": VALUE, "description": "the vendor"}
    )
    assert made.status_code == 303 and made.headers["location"] == "/c/acme/settings"
    html = (await dash.client.get("/c/acme/settings")).text
    assert 'data-secret="api_key"' in html and "the vendor" in html and VALUE not in html
    again = await dash.post("/c/acme/settings/secrets", {"name": "api_key", "value": VALUE})
    assert again.status_code == 409 and VALUE not in again.text
    assert (await dash.post("/c/acme/settings/secrets", {"name": "x", "value": ""})).status_code == 422
    rotated = await dash.post("/c/acme/settings/secrets/api_key/rotate", {"value": ROTATED})
    assert rotated.status_code == 303
    html = (await dash.client.get("/c/acme/settings")).text
    assert VALUE not in html and ROTATED not in html
    assert (await dash.post("/c/acme/settings/secrets/api_key/rotate", {"value": ""})).status_code == 422
    assert (await dash.post("/c/acme/settings/secrets/api_key/explode", {})).status_code == 404
    assert (await dash.post("/c/acme/settings/secrets/api_key/delete", {}, csrf=False)).status_code == 403
    deleted = await dash.post("/c/acme/settings/secrets/api_key/delete", {})
    assert deleted.status_code == 303
    assert 'data-secret="api_key"' not in (await dash.client.get("/c/acme/settings")).text
    assert (await dash.post("/c/acme/settings/secrets/api_key/delete", {})).status_code == 404


async def test_an_api_token_is_shown_once_then_only_its_hint_and_it_can_be_revoked(dash: Dash) -> None:
    await _company(dash)
    made = await dash.post("/c/acme/settings/tokens", {"name": "ci", "level": "read", "company_only": "1"})
    assert made.status_code == 200, made.text
    token = re.search(r'id="new-token" readonly value="([^"]+)"', made.text)
    assert token and len(token.group(1)) > 20
    html = (await dash.client.get("/c/acme/settings")).text
    assert token.group(1) not in html and token.group(1)[:12] in html  # the hint, as `token list`
    row = re.search(r'<tr data-token="([0-9a-f-]{36})"><td>ci</td>.*?</tr>', html, flags=re.S)
    assert row and "company:" in row.group(0) and "read" in row.group(0)
    bad = await dash.post("/c/acme/settings/tokens", {"name": "ci", "level": "root"})
    assert bad.status_code == 422
    revoked = await dash.post(f"/c/acme/settings/tokens/{row.group(1)}/revoke", {})
    assert revoked.status_code == 303
    html = (await dash.client.get("/c/acme/settings")).text
    assert re.search(r'<tr data-token="[0-9a-f-]{36}"><td>ci</td>.*?<td>revoked</td></tr>', html, flags=re.S)
    missing = "00000000-0000-0000-0000-000000000000"
    assert (await dash.post(f"/c/acme/settings/tokens/{missing}/revoke", {})).status_code == 404


async def test_a_backup_is_made_listed_and_verified_from_the_page(dash: Dash) -> None:
    await _company(dash)
    made = await dash.post("/c/acme/settings/backups", {})
    assert made.status_code == 303, made.text
    html = (await dash.client.get("/c/acme/settings")).text
    name = re.search(r'<tr data-backup="([^"]+\.tar\.gz)">', html)
    assert name, html
    assert 'aria-label="Verify ' + name.group(1) + '"' in html
    checked = await dash.post("/c/acme/settings/backups/verify", {"name": name.group(1)})
    assert checked.status_code == 200 and f"{name.group(1)} is intact" in checked.text
    assert (await dash.post("/c/acme/settings/backups/verify", {"name": "../etc.tar.gz"})).status_code == 422
    got = await dash.client.get(f"/c/acme/settings/backups/{name.group(1)}")
    assert got.status_code == 200 and got.content[:2] == b"\x1f\x8b"  # the gzip file itself
    assert name.group(1) in got.headers["content-disposition"]
    assert (await dash.client.get("/c/acme/settings/backups/..%2Fdashboard-password")).status_code in (
        404,
        422,
    )
    assert (await dash.client.get("/c/acme/settings/backups/none.tar.gz")).status_code == 404
    assert (await dash.post("/c/acme/settings/backups/verify", {"name": "none.tar.gz"})).status_code == 404


async def test_a_backup_holding_the_master_key_is_not_downloadable(dash: Dash) -> None:
    from starlette.concurrency import run_in_threadpool

    from company_agents.backup import create_backup
    from company_agents.master_key import load_master_key

    await _company(dash)
    settings = dash.app.state.settings
    load_master_key(settings, create=True)
    info = await run_in_threadpool(lambda: create_backup(settings, dash.db, include_secrets=True))
    html = (await dash.client.get("/c/acme/settings")).text
    assert f'data-backup="{info.path.name}"' in html
    assert f'aria-label="Download {info.path.name}"' not in html
    refused = await dash.client.get(f"/c/acme/settings/backups/{info.path.name}")
    assert refused.status_code == 409 and "master key" in refused.text
