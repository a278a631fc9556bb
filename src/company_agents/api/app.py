"""The REST API application (``127.0.0.1:3100``): built per process by ``create_app``, no globals."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

from company_agents import __version__
from company_agents.api.errors import install_error_handlers
from company_agents.db.database import Database


def envelope(data: Any, request_id: str | None = None) -> dict[str, Any]:
    """The product's JSON envelope: ``{"data": …, "meta": {"requestId", "timestamp"}}``."""
    return {
        "data": data,
        "meta": {
            "requestId": request_id or f"req_{uuid.uuid4().hex[:16]}",
            "timestamp": datetime.now(UTC).isoformat(),
        },
    }


def create_app(db: Database) -> FastAPI:
    app = FastAPI(title="Company Agents", version=__version__, docs_url=None, redoc_url=None)
    app.state.db = db
    app.state.started = time.monotonic()

    install_error_handlers(app)

    @app.get("/healthz")
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
            "uptimeSeconds": round(time.monotonic() - app.state.started, 3),
        }
        return JSONResponse(envelope(body), status_code=200 if database == "ok" else 503)

    return app
