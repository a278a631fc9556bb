"""The dashboard application (``127.0.0.1:3101``): built per process by ``create_dashboard_app``.

Pages are server-rendered Jinja templates (``templates/``); each page keeps its changing part in a
fragment it can re-fetch alone (``?part=live``) when the company's SSE stream (``/c/{slug}/live``)
says something changed, or on the refresh fallback the user picks. Forms post back and redirect
(POST, redirect, GET), so every action works by keyboard and without script too. No secret or token
is ever handed to a template.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.staticfiles import StaticFiles

from company_agents import __version__
from company_agents.dashboard import charts
from company_agents.dashboard.hosts import (
    check_dashboard_host,
    dashboard_host,
    dashboard_url,
    private_network,
)
from company_agents.dashboard.security import DashboardGuard, allowed_hosts, new_token
from company_agents.errors import CompanyAgentsError

if TYPE_CHECKING:
    from company_agents.db.database import Database
    from company_agents.settings import Settings

__all__ = [
    "check_dashboard_host",
    "create_dashboard_app",
    "dashboard_host",
    "dashboard_url",
    "private_network",
]

HERE = Path(__file__).parent
REFRESH_CHOICES = (0, 5, 10, 30)


def templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        gauge=charts.gauge,
        bars=charts.bars,
        sparkline=charts.sparkline,
        org_chart=charts.org_chart,
        version=__version__,
        refresh_choices=REFRESH_CHOICES,
    )
    env.filters["usd"] = charts.usd
    env.filters["tokens"] = charts.tokens
    env.filters["pairs"] = lambda rows, key, value: [(r[key], r[value]) for r in rows]
    return env


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """``name`` with the page's common context; ``?part=live`` renders only its live fragment."""
    env: Environment = request.app.state.templates
    if request.query_params.get("part") == "live" and "live" in context:
        name = context["live"]
    html = env.get_template(name).render(csrf=request.app.state.csrf_token, request=request, **context)
    return HTMLResponse(html, status_code=status)


async def form_of(request: Request) -> dict[str, str]:
    """The posted form's fields (urlencoded; the guard already capped its size), last value wins."""
    body = (await request.body()).decode("utf-8", "replace")
    return {k: v[-1].strip() for k, v in parse_qs(body, keep_blank_values=True).items()}


def create_dashboard_app(
    db: Database, settings: Settings | None = None, *, access_token: str | None = None
) -> FastAPI:
    """The dashboard on ``db``, answering only for its host (``dashboard_host``) and port, and only to a
    browser that opened ``dashboard_url(settings, access_token)`` (default: a new token) or, in the
    private-network mode, logged in with the dashboard password."""
    if settings is None:
        from company_agents.settings import Settings

        settings = Settings()
    app = FastAPI(title="Company Agents dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.db = db
    app.state.settings = settings
    app.state.csrf_token = new_token()
    # Who may look at all: the browser that opened the link `up` printed (security.py).
    app.state.access_token = access_token or new_token()
    app.state.templates = templates()
    # The private-network mode: a browser gets in with the dashboard password (login.py); read once.
    app.state.password_hash = check_dashboard_host(settings)

    @app.exception_handler(CompanyAgentsError)
    async def domain_error(request: Request, exc: CompanyAgentsError) -> HTMLResponse:
        # The domain's messages are written for the user and carry no secrets (errors.py).
        return render(request, "error.html", status=exc.http_status, message=str(exc))

    from company_agents.dashboard import actions, activity, live, pages, settings_page

    app.include_router(pages.router)
    app.include_router(activity.router)
    app.include_router(settings_page.router)
    app.include_router(actions.router)
    app.include_router(live.router)
    if app.state.password_hash is not None:
        from company_agents.dashboard import login

        app.include_router(login.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.add_middleware(
        DashboardGuard,
        hosts=allowed_hosts(dashboard_host(settings), settings.dashboard_port),
        csrf_token=app.state.csrf_token,
        access_token=app.state.access_token,
        login=app.state.password_hash is not None,
    )
    return app
