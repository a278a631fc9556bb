"""``/login``, in the private-network mode only (``up --dashboard-host``, not loopback): the dashboard
password, checked against its scrypt hash in the home, buys the session cookie.

The session is the process's access secret in the same HttpOnly, SameSite=Strict cookie the access
link sets, so the guard has one thing to check; it ends when the process does. A wrong password waits
a second before the answer, so guessing is slow (scrypt makes each try costly for us as well).
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from company_agents.dashboard.app import form_of, render
from company_agents.dashboard.security import LOGIN_PATH, access_cookie

router = APIRouter()

WRONG_PASSWORD_DELAY_SECONDS = 1.0


@router.get(LOGIN_PATH, response_class=HTMLResponse)
async def login_page(request: Request) -> HTMLResponse:
    return render(request, "login.html", company=None, wrong=False)


@router.post(LOGIN_PATH, response_model=None)
async def log_in(request: Request) -> Response:
    from company_agents.dashboard.password import check_password

    form = await form_of(request)
    ok = await run_in_threadpool(check_password, form.get("password", ""), request.app.state.password_hash)
    if not ok:
        await asyncio.sleep(WRONG_PASSWORD_DELAY_SECONDS)
        return render(request, "login.html", status=401, company=None, wrong=True)
    response = RedirectResponse("/", status_code=303)
    response.headers["set-cookie"] = access_cookie(request.app.state.access_token)
    return response
