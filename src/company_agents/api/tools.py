"""The agent tool endpoint: ``POST /tools/<name>`` with ``Authorization: Bearer <lease token>``.

Every tool is a fenced write (``leases``): a stale token gets 409 ``stale_fencing_token`` and the
rejection is audited (once per run and tool per minute); an unknown token 401; a token of another task
403; malformed input 422 naming the field; a body over ``tool_max_body_bytes`` 413; a database that is
down 503 with ``Retry-After``. A rejected call changes nothing.
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
from company_agents.agents import get_agent
from company_agents.api.app import envelope
from company_agents.api.body_limit import BodyLimit
from company_agents.api.errors import install_error_handlers
from company_agents.audit.rejections import record_once_per_window
from company_agents.db.database import Database
from company_agents.db.errors import is_conflict
from company_agents.db.retry import retry_transient
from company_agents.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    MemoryAccessDenied,
    NotFound,
    Unauthorized,
)
from company_agents.identity import authenticate_agent
from company_agents.memory import check_access, check_scope, read_memory, write_memory
from company_agents.settings import Settings
from company_agents.tokens import LEASE_TOKEN_PREFIX

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


class MemoryCall(BaseModel):
    """Memory tools take a lease token (acting as the run's agent, fenced) or an agent identity token."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    fencing_token: int | None = Field(default=None, ge=0)
    scope: str = Field(min_length=1, max_length=20)
    scope_id: UUID | None = None


class MemoryRead(MemoryCall):
    topic: str | None = Field(default=None, max_length=200)
    history: bool = False


class MemoryWrite(MemoryCall):
    topic: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=100_000)


def _field_of(error: dict[str, Any]) -> str:
    loc = [str(p) for p in error.get("loc", ()) if p != "body"]
    if error.get("type") == "json_invalid":
        return "body"
    return ".".join(loc) or "body"


def _bearer(authorization: str | None) -> str:
    token = (authorization or "").removeprefix("Bearer ").strip()
    if not authorization or not authorization.startswith("Bearer ") or not token:
        raise Unauthorized("send Authorization: Bearer <token>")
    return token


def create_tool_app(db: Database, settings: Settings) -> FastAPI:
    app = FastAPI(title="Company Agents tool endpoint", docs_url=None, redoc_url=None)
    router = APIRouter(prefix="/tools")
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.tool_max_body_bytes)

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
        token = _bearer(authorization)
        async with db.engine.connect() as conn:
            async with conn.begin():
                ident = await leases.authenticate(conn, token)
            if call.task_id is not None and call.task_id != ident.task_id:
                async with conn.begin():
                    await record_once_per_window(
                        conn,
                        match={"tool": tool, "runId": str(ident.run_id)},
                        actor=f"agent:{ident.agent_id}",
                        action="lease.cross_task_rejected",
                        subject_type="task",
                        subject_id=call.task_id,
                        company_id=ident.company_id,
                        payload={"tool": tool, "runId": str(ident.run_id), "ownTaskId": str(ident.task_id)},
                    )
                raise Forbidden("this lease token does not act for that task", task=str(call.task_id))

            async def once() -> T:
                async with conn.begin():
                    return await write(conn, ident)

            try:
                # The write's own transaction is the boundary: a deadlock or serialization failure
                # rolled it back whole, so it is run again (a stale token is a Conflict, not retried).
                # Not a lost connection: the write may have committed, and the agent must be told.
                return await retry_transient(once, what=tool, retry_on=is_conflict)
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
                conn,
                ident,
                fencing_token=call.fencing_token,
                reason=call.reason,
                backoff=leases.RetryBackoff.from_settings(settings),
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

    async def memory_principal(
        conn: AsyncConnection, authorization: str | None, call: MemoryCall
    ) -> tuple[dict[str, Any], list[UUID], str]:
        """The agent a memory call acts for, the tasks it may use, and the actor to record."""
        token = _bearer(authorization)
        if token.startswith(LEASE_TOKEN_PREFIX):
            ident = await leases.authenticate(conn, token)
            if call.fencing_token is None:
                raise InvalidInput("fencingToken: required with a lease token", field="fencingToken")
            if not await leases.lease_is_current(conn, ident, fencing_token=call.fencing_token):
                raise leases.stale_error(ident, call.fencing_token, "memory")
            agent = await get_agent(conn, ident.company_id, ident.agent_id)
            return agent, [ident.task_id], f"agent:{ident.agent_id}"
        agent = await authenticate_agent(conn, token)
        return agent, [], f"agent:{agent['id']}"

    def default_scope_id(agent: dict[str, Any], scope: str, tasks: list[UUID], given: UUID | None) -> UUID:
        if given is not None:
            return given
        defaults = {
            "company": agent["company_id"],
            "team": agent["team_id"],
            "agent": agent["id"],
            "task": tasks[0] if tasks else None,
        }
        if scope not in defaults:
            check_scope(scope)
        value = defaults[scope]
        if value is None:
            raise InvalidInput(f"scopeId: required for {scope} memory here", field="scopeId")
        return UUID(str(value))

    async def memory_tool(
        tool: str, authorization: str | None, call: MemoryCall, work: Callable[..., Awaitable[T]]
    ) -> T:
        async with db.engine.connect() as conn:
            async with conn.begin():
                agent, task_ids, actor = await memory_principal(conn, authorization, call)
            scope_id = default_scope_id(agent, call.scope, task_ids, call.scope_id)
            try:
                check_access(agent, call.scope, scope_id, task_ids=task_ids)
            except MemoryAccessDenied as exc:
                async with conn.begin():
                    await record_once_per_window(
                        conn,
                        match={"tool": tool},
                        actor=actor,
                        action="memory.access_denied",
                        subject_type="memory",
                        subject_id=f"{call.scope}:{scope_id}",
                        company_id=agent["company_id"],
                        payload={"tool": tool, "scope": call.scope, "scopeId": str(scope_id)},
                    )
                raise exc
            async with conn.begin():
                return await work(conn, agent, scope_id, actor, task_ids)

    @router.post("/memory_read")
    async def memory_read(call: MemoryRead, authorization: Auth = None) -> dict[str, Any]:
        """Read memory in one of the caller's scopes: latest per topic, or the history."""

        async def work(conn: AsyncConnection, agent: dict[str, Any], scope_id: UUID, *_: Any) -> Any:
            return await read_memory(
                conn, agent["company_id"], call.scope, scope_id, topic=call.topic, history=call.history
            )

        rows = await memory_tool("memory_read", authorization, call, work)
        entries = [
            {
                "id": r["id"],
                "topic": r["topic"],
                "body": r["body"],
                "actor": r["actor"],
                "createdAt": r["created_at"].isoformat(),
            }
            for r in rows
        ]
        return envelope({"scope": call.scope, "entries": entries})

    @router.post("/memory_write")
    async def memory_write(call: MemoryWrite, authorization: Auth = None) -> dict[str, Any]:
        """Append a memory entry in one of the caller's scopes (nothing is overwritten)."""

        async def work(
            conn: AsyncConnection, agent: dict[str, Any], scope_id: UUID, actor: str, task_ids: list[UUID]
        ) -> Any:
            return await write_memory(
                conn,
                company_id=agent["company_id"],
                scope=call.scope,
                scope_id=scope_id,
                topic=call.topic,
                body=call.body,
                actor=actor,
                source_agent_id=agent["id"],
                source_task_id=task_ids[0] if task_ids else None,
            )

        row = await memory_tool("memory_write", authorization, call, work)
        return envelope({"id": row["id"], "topic": row["topic"]})

    @router.post("/{name}")
    async def unknown_tool(name: str) -> dict[str, Any]:
        """Unknown tools are 404."""
        raise NotFound(f"no tool named {name!r}", tool=name)

    app.include_router(router)
    return app
