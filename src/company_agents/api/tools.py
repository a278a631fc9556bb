"""The agent tool endpoint: ``POST /tools/<name>`` with ``Authorization: Bearer <lease token>``, and the
MCP server at ``/mcp`` (``api/mcp.py``) on the same port. Both are thin faces of ``agent_tools``.

Every run tool is a fenced write (``leases``): a stale token gets 409 ``stale_fencing_token`` and the
rejection is audited (once per run and tool per minute); an unknown token 401; a token of another task
403; malformed input 422 naming the field; a body over ``tool_max_body_bytes`` 413; a database that is
down 503 with ``Retry-After``. A rejected call changes nothing.

Over HTTP each body carries the fencing token of the attempt it speaks for (``fencingToken``) and may
name its task (``taskId``); over MCP the lease token implies both.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import Field
from starlette.routing import Route

from company_agents.agent_tools import assets, calls, memory_tools, service, subtasks
from company_agents.agent_tools.auth import bearer_token, is_lease_token
from company_agents.agent_tools.fencing import Fence, ToolEnv
from company_agents.api.app import envelope
from company_agents.api.body_limit import BodyLimit
from company_agents.api.errors import install_error_handlers
from company_agents.api.mcp_mount import MCP_PATH, LazyMcp
from company_agents.db.database import Database
from company_agents.errors import InvalidInput, NotFound
from company_agents.settings import Settings

# Module level: with postponed annotations FastAPI resolves these names from the module's globals.
Auth = Annotated[str | None, Header()]


class Fenced(calls.Call):
    """What an HTTP body adds to a run tool's arguments."""

    fencing_token: int = Field(ge=0)
    # Optional: when given it must be the token's own task (a mismatch is 403).
    task_id: UUID | None = None

    def fence(self) -> Fence:
        return Fence(fencing_token=self.fencing_token, task_id=self.task_id)


class RenewLeaseBody(calls.RenewLease, Fenced):
    pass


class ReportProgressBody(calls.ReportProgress, Fenced):
    pass


class MarkCompleteBody(calls.MarkComplete, Fenced):
    pass


class MarkFailedBody(calls.MarkFailed, Fenced):
    pass


class RequestHandoffBody(calls.RequestHandoff, Fenced):
    pass


class RequestApprovalBody(calls.RequestApproval, Fenced):
    pass


class CreateSubtaskBody(calls.CreateSubtask, Fenced):
    pass


class UploadAssetBody(calls.UploadAsset, Fenced):
    pass


class MemoryFenced(calls.Call):
    """Memory tools take a lease token (fenced: ``fencingToken`` required) or an agent identity token."""

    fencing_token: int | None = Field(default=None, ge=0)

    def fence_for(self, token: str) -> Fence:
        if is_lease_token(token) and self.fencing_token is None:
            raise InvalidInput("fencingToken: required with a lease token", field="fencingToken")
        return Fence(fencing_token=self.fencing_token)


class MemoryReadBody(calls.MemoryRead, MemoryFenced):
    pass


class MemoryWriteBody(calls.MemoryWrite, MemoryFenced):
    pass


def _field_of(error: dict[str, Any]) -> str:
    loc = [str(p) for p in error.get("loc", ()) if p != "body"]
    if error.get("type") == "json_invalid":
        return "body"
    return ".".join(loc) or "body"


def create_tool_app(db: Database, settings: Settings) -> FastAPI:
    """The tool port's app: ``/tools/<name>``, ``/mcp`` and ``/healthz``. Served with its lifespan on:
    the MCP session manager runs inside it."""
    env = ToolEnv(db=db, settings=settings)
    mcp = LazyMcp(env)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with mcp.running():
            yield

    app = FastAPI(title="Company Agents tool endpoint", docs_url=None, redoc_url=None, lifespan=lifespan)
    router = APIRouter(prefix="/tools")
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.tool_max_body_bytes)
    app.router.routes.append(Route(MCP_PATH, endpoint=mcp))
    app.state.mcp = mcp  # `up` calls its load() once it is ready

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

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        """The tool port is up (the database is not consulted)."""
        return {"status": "ok"}

    @router.post("/renew_lease")
    async def renew_lease(call: RenewLeaseBody, authorization: Auth = None) -> dict[str, Any]:
        """Extend the lease from the database clock."""
        return envelope(await service.renew_lease(env, bearer_token(authorization), call, call.fence()))

    @router.post("/report_progress")
    async def report_progress(call: ReportProgressBody, authorization: Auth = None) -> dict[str, Any]:
        """Store a structured checkpoint with the run."""
        return envelope(await service.report_progress(env, bearer_token(authorization), call, call.fence()))

    @router.post("/mark_complete")
    async def mark_complete(call: MarkCompleteBody, authorization: Auth = None) -> dict[str, Any]:
        """Finish the attempt with its output; the task goes to review."""
        return envelope(await service.mark_complete(env, bearer_token(authorization), call, call.fence()))

    @router.post("/mark_failed")
    async def mark_failed(call: MarkFailedBody, authorization: Auth = None) -> dict[str, Any]:
        """Give up on the attempt; the task is retried or failed by the retry policy."""
        return envelope(await service.mark_failed(env, bearer_token(authorization), call, call.fence()))

    @router.post("/request_handoff")
    async def request_handoff(call: RequestHandoffBody, authorization: Auth = None) -> dict[str, Any]:
        """Hand the task to a human."""
        return envelope(await service.request_handoff(env, bearer_token(authorization), call, call.fence()))

    @router.post("/request_approval")
    async def request_approval(call: RequestApprovalBody, authorization: Auth = None) -> dict[str, Any]:
        """Ask a person; wait (long poll, lease renewed) for the answer up to a bounded time."""
        token = bearer_token(authorization)
        return envelope(await service.request_approval(env, token, call, call.fence()))

    @router.post("/memory_read")
    async def memory_read(call: MemoryReadBody, authorization: Auth = None) -> dict[str, Any]:
        """Read memory in one of the caller's scopes: latest per topic, or the history."""
        token = bearer_token(authorization)
        return envelope(await memory_tools.memory_read(env, token, call, call.fence_for(token)))

    @router.post("/memory_write")
    async def memory_write(call: MemoryWriteBody, authorization: Auth = None) -> dict[str, Any]:
        """Append a memory entry in one of the caller's scopes (nothing is overwritten)."""
        token = bearer_token(authorization)
        return envelope(await memory_tools.memory_write(env, token, call, call.fence_for(token)))

    @router.post("/create_subtask")
    async def create_subtask(call: CreateSubtaskBody, authorization: Auth = None) -> dict[str, Any]:
        """Create a child task inside the parent task's budget."""
        return envelope(await subtasks.create_subtask(env, bearer_token(authorization), call, call.fence()))

    @router.post("/upload_asset")
    async def upload_asset(call: UploadAssetBody, authorization: Auth = None) -> dict[str, Any]:
        """Keep a file of the run's workspace as a company asset."""
        return envelope(await assets.upload_asset(env, bearer_token(authorization), call, call.fence()))

    @router.post("/{name}")
    async def unknown_tool(name: str) -> dict[str, Any]:
        """Unknown tools are 404."""
        raise NotFound(f"no tool named {name!r}", tool=name)

    app.include_router(router)
    return app
