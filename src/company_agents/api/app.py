"""The REST API application (``127.0.0.1:3100``): built per process by ``create_app``, no globals.

``/healthz`` is outside ``/v1`` and needs no token (``doctor`` and ``port_owner`` probe it); every
``/v1`` route needs an API token (docs/api.md). Routers live in ``api/routes/<resource>.py`` and are
listed in ``ROUTERS`` below.
"""

from __future__ import annotations

import importlib
import os
import time
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy import text

from company_agents import __version__
from company_agents.api.body_limit import BodyLimit
from company_agents.api.errors import install_error_handlers
from company_agents.api.middleware import RequestId, new_request_id
from company_agents.api.schemas.common import meta

if TYPE_CHECKING:
    from company_agents.db.database import Database
    from company_agents.settings import Settings

# The /v1 routers, by module under api/routes/ (each defines ``router``), in the order of the docs.
ROUTERS = [
    "whoami",
    "companies",
    "agents",
    "tasks",
    "task_comments",
    "runs",
    "approvals",
    "approval_rules",
    "costs",
    "cost_entries",
    "overview",
    "events",
    "webhooks",
    "activity",
    "memory",
    "secrets",
    "integrations",
    "tokens",
    "backups",
    "dashboard_models",
]


def envelope(data: Any, request_id: str | None = None) -> dict[str, Any]:
    """The product's JSON envelope: ``{"data": …, "meta": {"requestId", "timestamp"}}``."""
    return {"data": data, "meta": meta(request_id or new_request_id())}


def _operation_id(route: APIRoute) -> str:
    # Routes set operation_id explicitly; this only names one that forgot (the OpenAPI test fails it).
    return route.name


def create_app(db: Database, settings: Settings | None = None) -> FastAPI:
    """The API app on ``db``; ``settings`` (default: the defaults) sets body limit and CORS."""
    if settings is None:
        from company_agents.settings import Settings

        settings = Settings()
    app = FastAPI(
        title="Company Agents",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url="/v1/openapi.json",
        generate_unique_id_function=_operation_id,
    )
    app.state.db = db
    app.state.settings = settings
    app.state.started = time.monotonic()

    install_error_handlers(app)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        """Liveness and database reachability."""
        try:
            async with db.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            database = "ok"
        except Exception:  # a health check reports, it does not raise
            database = "unreachable"
        body = {
            "status": "ok" if database == "ok" else "degraded",
            "database": database,
            "embedded": db.is_embedded,
            "version": __version__,
            "pid": os.getpid(),  # so `doctor` knows the ports this process holds are ours
            "uptimeSeconds": round(time.monotonic() - app.state.started, 3),
        }
        return JSONResponse(envelope(body), status_code=200 if database == "ok" else 503)

    # Each router straight into the app under /v1, not through an intermediate /v1 router: FastAPI
    # builds every route (its dependencies and models) once more per level of inclusion, and a
    # router included without a prefix has all its routes built at once to check their paths: the
    # nested form cost `up` a second pass over every route before the port could open.
    for name in ROUTERS:
        module = importlib.import_module(f"company_agents.api.routes.{name}")
        app.include_router(module.router, prefix="/v1")

    # Outermost last: the request id wraps everything, so even a 413 carries it.
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes)
    if settings.api_cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api_cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-Id", "Last-Event-ID"],
            expose_headers=["X-Request-Id"],
        )
    app.add_middleware(RequestId)
    return app
