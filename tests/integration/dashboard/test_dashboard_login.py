"""The private-network mode (``--dashboard-host`` not loopback): the login page, the password, the
session cookie (HttpOnly, SameSite=Strict), and every other request refused without it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from company_agents.dashboard.app import create_dashboard_app
from company_agents.dashboard.login import WRONG_PASSWORD_DELAY_SECONDS
from company_agents.dashboard.password import write_password
from company_agents.db.database import Database
from company_agents.settings import Settings

HOST = "192.168.50.7"
PORT = 3101
PASSWORD = "correct horse battery staple"


@pytest.fixture
async def lan(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    from company_agents.dashboard import login

    monkeypatch.setattr(login, "WRONG_PASSWORD_DELAY_SECONDS", 0.01)
    settings = Settings(home=tmp_path / "home", database_url=db_url, dashboard_port=PORT, dashboard_host=HOST)
    write_password(settings, PASSWORD)
    db = Database(settings=settings, url=db_url)
    app = create_dashboard_app(db, settings)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{HOST}:{PORT}") as client:
        yield app, client
    await db.dispose()


async def test_a_browser_logs_in_with_the_password_and_keeps_a_strict_session_cookie(lan: Any) -> None:
    app, client = lan
    assert WRONG_PASSWORD_DELAY_SECONDS >= 1  # the real delay (the fixture shortens it)
    first = await client.get("/c/acme/tasks")
    assert first.status_code == 303 and first.headers["location"] == "/login"
    page = await client.get("/login")
    assert page.status_code == 200 and 'type="password" name="password"' in page.text
    assert "<label>Dashboard password" in page.text and app.state.access_token not in page.text
    csrf = app.state.csrf_token
    assert (await client.post("/login", data={"password": PASSWORD})).status_code == 403  # no CSRF
    wrong = await client.post("/login", data={"password": "guess", "csrf_token": csrf})
    assert wrong.status_code == 401 and 'id="wrong"' in wrong.text and "set-cookie" not in wrong.headers
    # Without the session: every page and every action is refused.
    assert (await client.get("/")).status_code == 303
    refused = await client.post("/companies", data={"name": "Acme", "csrf_token": csrf})
    assert refused.status_code == 401
    assert (await client.get("/c/acme/live")).status_code == 303
    client.cookies.set("ca_dashboard", "guess")
    assert (await client.get("/")).status_code == 303
    client.cookies.clear()

    ok = await client.post("/login", data={"password": PASSWORD, "csrf_token": csrf})
    assert ok.status_code == 303 and ok.headers["location"] == "/"
    cookie = ok.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and PASSWORD not in cookie
    home = await client.get("/")
    assert home.status_code == 200 and 'action="/companies"' in home.text
    made = await client.post("/companies", data={"name": "Acme", "csrf_token": csrf})
    assert made.status_code == 303
    assert (await client.get("/c/acme")).status_code == 200
    # The Host check holds here too: only the name the dashboard was given.
    assert (await client.get("/", headers={"Host": f"evil.example:{PORT}"})).status_code == 400


async def test_loopback_stays_password_free_and_has_no_login_page(db_url: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", database_url=db_url, dashboard_port=PORT)
    write_password(settings, PASSWORD)  # set, but loopback does not ask for it
    db = Database(settings=settings, url=db_url)
    app = create_dashboard_app(db, settings)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://127.0.0.1:{PORT}") as client:
        assert (await client.get("/")).status_code == 401  # the access link, as before
        assert (await client.get("/login")).status_code == 401
        entered = await client.get(f"/?token={app.state.access_token}")
        assert entered.status_code == 303
        assert (await client.get("/")).status_code == 200
        assert (await client.get("/login")).status_code == 404
    await db.dispose()


async def test_guesses_are_checked_one_at_a_time(lan: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from company_agents.dashboard import login

    app, client = lan
    monkeypatch.setattr(login, "WRONG_PASSWORD_DELAY_SECONDS", 0.3)
    started = time.monotonic()
    answers = await asyncio.gather(
        *(
            client.post("/login", data={"password": f"guess{i}", "csrf_token": app.state.csrf_token})
            for i in range(3)
        )
    )
    assert [a.status_code for a in answers] == [401, 401, 401]
    assert time.monotonic() - started >= 0.9  # three waits in a row, not side by side
