"""``/login``, in the private-network mode only (``up --dashboard-host``, not loopback): the dashboard
password, checked against its scrypt hash in the home, buys the session cookie.

The session is the process's access secret in the same HttpOnly, SameSite=Strict cookie the access
link sets, so the guard has one thing to check; it ends when the process does. Passwords are checked
one at a time and a wrong one waits a second before the answer, so guessing runs at about one try a
second however many requests arrive at once.
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


def attempts(request: Request) -> asyncio.Lock:
    lock = getattr(request.app.state, "login_lock", None)
    if lock is None:
        lock = request.app.state.login_lock = asyncio.Lock()
    return lock


@router.get(LOGIN_PATH, response_class=HTMLResponse)
async def login_page(request: Request) -> HTMLResponse:
    return render(request, "login.html", company=None, wrong=False)


@router.post(LOGIN_PATH, response_model=None)
async def log_in(request: Request) -> Response:
    from company_agents.dashboard.password import check_password

    form = await form_of(request)
    # One check at a time, the wait for a wrong one included: guesses cannot run in parallel.
    async with attempts(request):
        stored = request.app.state.password_hash
        ok = await run_in_threadpool(check_password, form.get("password", ""), stored)
        if not ok:
            await asyncio.sleep(WRONG_PASSWORD_DELAY_SECONDS)
    if not ok:
        return render(request, "login.html", status=401, company=None, wrong=True)
    response = RedirectResponse("/", status_code=303)
    response.headers["set-cookie"] = access_cookie(request.app.state.access_token)
    return response
