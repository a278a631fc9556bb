"""How errors leave the HTTP apps: always the JSON body ``{"error": {"code", "message", "details"}}``.

One set of handlers for the REST API and the tool endpoint. Driver errors are translated
(``db.errors.translate``) so that a caller never sees SQL or a plain-text 500; a database that is down
is 503 with ``Retry-After``, which tells an agent (or a script) to try again rather than give up.
"""

from __future__ import annotations

import logging

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException

from company_agents.db.errors import translate
from company_agents.errors import CompanyAgentsError

log = logging.getLogger(__name__)

# How long a client should wait before retrying after a 503: long enough for a restart or failover
# to make progress, short enough that an agent's lease (minutes) survives a few retries.
RETRY_AFTER_SECONDS = 5


class InternalError(CompanyAgentsError):
    """Internal error; the orchestrator's log has the details."""

    code = "internal_error"


def error_response(error: CompanyAgentsError) -> JSONResponse:
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if error.http_status == 503 else None
    return JSONResponse({"error": error.to_dict()}, status_code=error.http_status, headers=headers)


async def _domain_error(_: Request, exc: Exception) -> JSONResponse:
    return error_response(exc if isinstance(exc, CompanyAgentsError) else InternalError())


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    """Starlette's own answers (unknown path, wrong method) in our body rather than ``{"detail": …}``."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else None
    codes = {404: "not_found", 405: "method_not_allowed"}
    error = CompanyAgentsError(str(detail or "HTTP error"))
    error.code = codes.get(status, "http_error")
    error.http_status = status
    response = error_response(error)
    if isinstance(exc, HTTPException) and exc.headers:
        response.headers.update(exc.headers)  # e.g. Allow on a 405
    return response


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    error = translate(exc)
    log.warning(
        "%s %s: %s",
        request.method,
        request.url.path,
        error.message,
        extra={"action": "api_database_error", "code": error.code},
    )
    return error_response(error)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error(
        "%s %s failed",
        request.method,
        request.url.path,
        exc_info=exc,
        extra={"action": "api_internal_error"},
    )
    return error_response(InternalError())


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers: ours, the driver's (translated), and a JSON 500 for anything else."""
    app.add_exception_handler(CompanyAgentsError, _domain_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(SQLAlchemyError, _database_error)
    app.add_exception_handler(psycopg.Error, _database_error)
    # Starlette runs an Exception handler in its outermost middleware and re-raises afterwards, so the
    # server still logs the traceback; the client gets the JSON body instead of plain text.
    app.add_exception_handler(Exception, _unexpected)
