"""How errors leave the HTTP apps: always ``{"error": {"code", "message", "details", "requestId"}}``.

One set of handlers for the REST API and the tool endpoint. Driver errors are translated
(``db.errors.translate``) so that a caller never sees SQL or a plain-text 500; a database that is down
is 503 with ``Retry-After``, which tells an agent (or a script) to try again rather than give up.
"""

from __future__ import annotations

import logging

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException

from company_agents.api.middleware import request_id_of
from company_agents.db.errors import translate
from company_agents.errors import CompanyAgentsError, InvalidInput

log = logging.getLogger(__name__)

# How long a client should wait before retrying after a 503: long enough for a restart or failover
# to make progress, short enough that an agent's lease (minutes) survives a few retries.
RETRY_AFTER_SECONDS = 5


class InternalError(CompanyAgentsError):
    """Internal error; the orchestrator's log has the details."""

    code = "internal_error"


def error_response(error: CompanyAgentsError, request_id: str | None = None) -> JSONResponse:
    headers: dict[str, str] = {}
    if error.http_status == 503:
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    if error.http_status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    body = error.to_dict()
    if request_id is not None:
        body["requestId"] = request_id
    return JSONResponse({"error": body}, status_code=error.http_status, headers=headers or None)


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    error = exc if isinstance(exc, CompanyAgentsError) else InternalError()
    return error_response(error, request_id_of(request))


def _field_of(error: dict[str, object]) -> str:
    loc = [str(p) for p in error.get("loc", ()) or () if p not in ("body", "query", "path", "header")]  # type: ignore[attr-defined]
    if error.get("type") == "json_invalid":
        return "body"
    return ".".join(loc) or "body"


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's validation failures as our ``invalid_input`` (422), with every field that failed."""
    errors = list(exc.errors()) if isinstance(exc, RequestValidationError) else []
    first = errors[0] if errors else {}
    field = _field_of(first)
    message = (
        "the body is not valid JSON"
        if field == "body" and first.get("type") == "json_invalid"
        else (f"{field}: {first.get('msg', 'invalid')}")
    )
    error = CompanyAgentsError(message)
    error.code = "invalid_input"
    error.http_status = 422
    error.details = {
        "field": field,
        "errors": [{"field": _field_of(e), "message": str(e.get("msg"))} for e in errors],
    }
    return error_response(error, request_id_of(request))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own answers (unknown path, wrong method) in our body rather than ``{"detail": …}``."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else None
    if status == 400:
        # FastAPI's answer to a body it cannot decode at all (bytes that are not UTF-8): the same
        # invalid input as a body that is not JSON, so the same 422 every operation declares.
        return error_response(
            InvalidInput("the body is not valid JSON", field="body"), request_id_of(request)
        )
    codes = {404: "not_found", 405: "method_not_allowed"}
    error = CompanyAgentsError(str(detail or "HTTP error"))
    error.code = codes.get(status, "http_error")
    error.http_status = status
    response = error_response(error, request_id_of(request))
    if isinstance(exc, HTTPException) and exc.headers:
        response.headers.update(exc.headers)  # e.g. Allow on a 405
    if status == 405:
        response.headers["Allow"] = _allowed_methods(request)
    return response


def _allowed_methods(request: Request) -> str:
    """Every method some route serves on this path: Starlette's ``Allow`` names only the first
    route's, and a path such as ``/companies`` has a GET route and a POST route."""
    from starlette.routing import Match

    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)  # PARTIAL: the path matches, the method does not
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    error = translate(exc)
    log.warning(
        "%s %s: %s",
        request.method,
        request.url.path,
        error.message,
        extra={"action": "api_database_error", "code": error.code},
    )
    return error_response(error, request_id_of(request))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error(
        "%s %s failed",
        request.method,
        request.url.path,
        exc_info=exc,
        extra={"action": "api_internal_error"},
    )
    return error_response(InternalError(), request_id_of(request))


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers: ours, the driver's (translated), and a JSON 500 for anything else."""
    app.add_exception_handler(CompanyAgentsError, _domain_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(SQLAlchemyError, _database_error)
    app.add_exception_handler(psycopg.Error, _database_error)
    # Starlette runs an Exception handler in its outermost middleware and re-raises afterwards, so the
    # server still logs the traceback; the client gets the JSON body instead of plain text.
    app.add_exception_handler(Exception, _unexpected)
