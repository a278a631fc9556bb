"""The agent tool endpoint: ``POST /tools/<name>`` with ``Authorization: Bearer <lease token>``.

Every tool is a fenced write (``leases``): a stale token gets 409 ``stale_fencing_token`` and the
rejection is audited; an unknown token 401; a token of another task 403; malformed input 422 naming
the field. A rejected call changes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar
from uuid import UUID

from fastapi import APIRouter, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import leases
from company_agents.api.app import envelope
from company_agents.db.database import Database
from company_agents.errors import CompanyAgentsError, Conflict, Forbidden, NotFound, Unauthorized
from company_agents.settings import Settings

T = TypeVar("T")
# Module level: with postponed annotations FastAPI resolves these names from the module's globals.
Auth = Annotated[str | None, Header()]


class ToolCall(BaseModel):
    """Every tool body carries the fencing token of the attempt it speaks for."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    fencing_token: int = Field(ge=0)
    # Optional: when given it must be the token's own task (a mismatch is 403).
    task_id: UUID | None = None


class RenewLease(ToolCall):
    pass


class ReportProgress(ToolCall):
    message: str = Field(min_length=1, max_length=10_000)
    step: str | None = Field(default=None, max_length=200)
    percent: float | None = Field(default=None, ge=0, le=100)
    data: dict[str, Any] | None = None


class MarkComplete(ToolCall):
    output: Any
    reasoning: str = Field(default="", max_length=20_000)


class MarkFailed(ToolCall):
    reason: str = Field(min_length=1, max_length=10_000)


class RequestHandoff(ToolCall):
    reason: str = Field(min_length=1, max_length=10_000)


def _field_of(error: dict[str, Any]) -> str:
    loc = [str(p) for p in error.get("loc", ()) if p != "body"]
    if error.get("type") == "json_invalid":
        return "body"
    return ".".join(loc) or "body"


def create_tool_app(db: Database, settings: Settings) -> FastAPI:
    app = FastAPI(title="Company Agents tool endpoint", docs_url=None, redoc_url=None)
    router = APIRouter(prefix="/tools")

    @app.exception_handler(CompanyAgentsError)
    async def _domain_error(_: Request, exc: CompanyAgentsError) -> JSONResponse:
        return JSONResponse({"error": exc.to_dict()}, status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        first = errors[0] if errors else {}
        field = _field_of(first)
        message = (
            "the body is not valid JSON" if field == "body" else f"{field}: {first.get('msg', 'invalid')}"
        )
        details = {
            "field": field,
            "errors": [{"field": _field_of(e), "message": e.get("msg")} for e in errors],
        }
        body = {"error": {"code": "invalid_input", "message": message, "details": details}}
        return JSONResponse(body, status_code=422)

    async def fenced(
        tool: str,
        authorization: str | None,
        call: ToolCall,
        write: Callable[[AsyncConnection, leases.RunIdentity], Awaitable[T]],
    ) -> T:
        token = (authorization or "").removeprefix("Bearer ").strip()
        if not authorization or not authorization.startswith("Bearer ") or not token:
            raise Unauthorized("send Authorization: Bearer <lease token>")
        async with db.engine.connect() as conn:
            async with conn.begin():
                ident = await leases.authenticate(conn, token)
            if call.task_id is not None and call.task_id != ident.task_id:
                raise Forbidden("this lease token does not act for that task", task=str(call.task_id))
            try:
                async with conn.begin():
                    return await write(conn, ident)
            except Conflict as exc:
                async with conn.begin():
                    await leases.record_rejection(
                        conn, ident, tool=tool, error=exc, presented=call.fencing_token
                    )
                raise

    @router.post("/renew_lease")
    async def renew_lease(call: RenewLease, authorization: Auth = None) -> dict[str, Any]:
        """Extend the lease from the database clock."""
        expires = await fenced(
            "renew_lease",
            authorization,
            call,
            lambda conn, ident: leases.renew(
                conn, ident, fencing_token=call.fencing_token, lease_seconds=settings.lease_seconds
            ),
        )
        return envelope({"leaseExpiresAt": expires.isoformat()})

    @router.post("/report_progress")
    async def report_progress(call: ReportProgress, authorization: Auth = None) -> dict[str, Any]:
        """Store a structured checkpoint with the run."""
        checkpoint = call.model_dump(exclude={"fencing_token", "task_id"}, exclude_none=True)
        checkpoint_id = await fenced(
            "report_progress",
            authorization,
            call,
            lambda conn, ident: leases.report_progress(
                conn, ident, fencing_token=call.fencing_token, checkpoint=checkpoint
            ),
        )
        return envelope({"checkpointId": checkpoint_id})

    @router.post("/mark_complete")
    async def mark_complete(call: MarkComplete, authorization: Auth = None) -> dict[str, Any]:
        """Finish the attempt with its output; the task goes to review."""
        row = await fenced(
            "mark_complete",
            authorization,
            call,
            lambda conn, ident: leases.complete(
                conn, ident, fencing_token=call.fencing_token, output=call.output, reasoning=call.reasoning
            ),
        )
        return envelope({"status": row["status"]})

    @router.post("/mark_failed")
    async def mark_failed(call: MarkFailed, authorization: Auth = None) -> dict[str, Any]:
        """Give up on the attempt; the task is retried or failed by the retry policy."""
        row = await fenced(
            "mark_failed",
            authorization,
            call,
            lambda conn, ident: leases.fail(
                conn, ident, fencing_token=call.fencing_token, reason=call.reason
            ),
        )
        return envelope(
            {"status": row["status"], "attempt": row["attempt"], "maxAttempts": row["max_attempts"]}
        )

    @router.post("/request_handoff")
    async def request_handoff(call: RequestHandoff, authorization: Auth = None) -> dict[str, Any]:
        """Hand the task to a human."""
        row = await fenced(
            "request_handoff",
            authorization,
            call,
            lambda conn, ident: leases.handoff(
                conn, ident, fencing_token=call.fencing_token, reason=call.reason
            ),
        )
        return envelope({"status": row["status"]})

    @router.post("/{name}")
    async def unknown_tool(name: str) -> dict[str, Any]:
        """Unknown tools are 404."""
        raise NotFound(f"no tool named {name!r}", tool=name)

    app.include_router(router)
    return app
