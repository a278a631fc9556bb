"""The MCP face of the agent tools: streamable HTTP at ``/mcp`` on the tool port (docs/mcp.md).

Built on the official SDK (``mcp`` 2.x ``MCPServer``). Each tool's JSON schema and description come from
its ``agent_tools.calls`` model, the same one the HTTP endpoint validates with, and each call goes to the
same ``agent_tools`` function. The differences are the face's own:

- the bearer token is checked on every HTTP request (401 before any MCP message is read), and again by
  each tool for what that token may do;
- the fencing token is the one the lease token implies: a client never sends one;
- a refusal is a tool error (``isError``) whose text and structured content are
  ``{"error": {"code", "message", "details"}}`` with our codes (``stale_fencing_token``, …), so a model
  reads what happened and a client can branch on the code; malformed arguments are ``invalid_input``
  naming the field, and nothing is written.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import ConfigDict, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from company_agents.agent_tools import assets, calls, memory_tools, service, subtasks
from company_agents.agent_tools.auth import bearer_token, check_bearer
from company_agents.agent_tools.fencing import IMPLIED, ToolEnv
from company_agents.api.errors import InternalError, error_response
from company_agents.api.mcp_mount import MCP_PATH
from company_agents.db.errors import is_database_error, translate
from company_agents.errors import CompanyAgentsError, InvalidInput

if TYPE_CHECKING:
    from company_agents.agent_tools.calls import Call

log = logging.getLogger(__name__)

INSTRUCTIONS = (
    "Company Agents: the tools of the task you are running. Report progress as you go, and end with "
    "exactly one of mark_complete, mark_failed or request_handoff. An error whose code is "
    "stale_fencing_token means this run no longer owns the task: stop at once."
)

Run = Callable[[ToolEnv, str, Any], Awaitable[dict[str, Any]]]


def _run(fn: Callable[..., Awaitable[dict[str, Any]]]) -> Run:
    async def run(env: ToolEnv, token: str, call: Any) -> dict[str, Any]:
        return await fn(env, token, call, IMPLIED)

    return run


# name → (arguments model, service function, read-only?). The names and arguments are a public surface
# (adapters and agents' prompts name them): add, never rename.
TOOLS: dict[str, tuple[type[Call], Run, bool]] = {
    "report_progress": (calls.ReportProgress, _run(service.report_progress), False),
    "mark_complete": (calls.MarkComplete, _run(service.mark_complete), False),
    "mark_failed": (calls.MarkFailed, _run(service.mark_failed), False),
    "request_handoff": (calls.RequestHandoff, _run(service.request_handoff), False),
    "request_approval": (calls.RequestApproval, _run(service.request_approval), False),
    "memory_read": (calls.MemoryRead, _run(memory_tools.memory_read), True),
    "memory_write": (calls.MemoryWrite, _run(memory_tools.memory_write), False),
    "create_subtask": (calls.CreateSubtask, _run(subtasks.create_subtask), False),
    "upload_asset": (calls.UploadAsset, _run(assets.upload_asset), False),
    "renew_lease": (calls.RenewLease, _run(service.renew_lease), False),
}


class _RawArguments(ArgModelBase):
    """Hands the tool the arguments as sent: they are validated by the tool's own model, so a mistake
    gets our ``invalid_input`` answer (the SDK's would carry pydantic's text)."""

    model_config = ConfigDict(extra="allow")

    def model_dump_one_level(self) -> dict[str, Any]:
        return {"arguments": dict(self.model_extra or {})}


def _result(data: dict[str, Any], *, error: bool = False) -> CallToolResult:
    text = json.dumps(data, default=str)
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=json.loads(text),
        is_error=error,
    )


def _error(exc: CompanyAgentsError) -> CallToolResult:
    return _result({"error": exc.to_dict()}, error=True)


def _invalid(exc: ValidationError) -> InvalidInput:
    errors = [
        {"field": ".".join(str(p) for p in e["loc"]) or "arguments", "message": e["msg"]}
        for e in exc.errors()
    ]
    first = errors[0]
    return InvalidInput(f"{first['field']}: {first['message']}", field=first["field"], errors=errors)


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with every local ``$ref`` replaced by its definition and ``$defs`` dropped: some
    clients hand tool schemas to model APIs that do not resolve references (none of ours recurse)."""
    defs = schema.get("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                siblings = {k: v for k, v in node.items() if k != "$ref"}
                return {**resolve(defs[ref.removeprefix("#/$defs/")]), **resolve(siblings)}
            return {k: resolve(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def _tool(env: ToolEnv, name: str, model: type[Call], run: Run, read_only: bool) -> Tool:
    async def call_tool(arguments: dict[str, Any], ctx: Context) -> CallToolResult:
        try:
            token = bearer_token((ctx.headers or {}).get("authorization"))
            try:
                call = model.model_validate(arguments)
            except ValidationError as exc:
                raise _invalid(exc) from None
            return _result(await run(env, token, call))
        except CompanyAgentsError as exc:
            return _error(exc)
        except Exception as exc:
            if is_database_error(exc):
                return _error(translate(exc))
            log.error("MCP tool %s failed", name, exc_info=exc, extra={"action": "mcp_tool_error"})
            return _error(InternalError())

    schema = inline_refs(model.model_json_schema(by_alias=True))
    description = schema.pop("description", "") or ""
    schema.pop("title", None)
    return Tool(
        fn=call_tool,
        name=name,
        title=None,
        description=description,
        parameters=schema,
        fn_metadata=FuncMetadata(arg_model=_RawArguments),
        is_async=True,
        context_kwarg="ctx",
        annotations=ToolAnnotations(read_only_hint=read_only, destructive_hint=False, open_world_hint=False),
    )


class BearerGuard:
    """Answers 401 (our JSON error body, ``WWW-Authenticate: Bearer``) to any request without a known
    lease token or agent identity token, before the MCP transport reads a byte of it."""

    def __init__(self, app: ASGIApp, *, env: ToolEnv) -> None:
        self.app = app
        self.env = env

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        authorization = headers.get(b"authorization", b"").decode("latin-1") or None
        try:
            token = bearer_token(authorization)
            # One read, outside a transaction: no BEGIN and ROLLBACK round trips on every request.
            async with self.env.db.autocommit() as conn:
                await check_bearer(conn, token)
        except CompanyAgentsError as exc:
            await self._refuse(exc, scope, receive, send)
            return
        except Exception as exc:
            if not is_database_error(exc):
                raise
            await self._refuse(translate(exc), scope, receive, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(error: CompanyAgentsError, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(error)
        if error.http_status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="company-agents"'
        await response(scope, receive, send)


def create_mcp_server(env: ToolEnv) -> MCPServer:
    """The MCP server with every agent tool."""
    return MCPServer(
        name="company-agents",
        title="Company Agents",
        instructions=INSTRUCTIONS,
        tools=[_tool(env, name, model, run, ro) for name, (model, run, ro) in TOOLS.items()],
        # No subscriptions/listen: nothing here changes while a client is connected.
        subscriptions=False,
    )


def create_mcp_app(env: ToolEnv) -> tuple[ASGIApp, StreamableHTTPSessionManager]:
    """The ``/mcp`` endpoint (behind the bearer check) and its session manager, which must run
    (``session_manager.run()``) while the endpoint is served: ``api.mcp_mount`` runs it."""
    server = create_mcp_server(env)
    # Builds the session manager (with DNS-rebinding protection when bound to loopback); the Starlette
    # app it returns is not used: the endpoint is mounted on the tool app behind the bearer check.
    server.streamable_http_app(streamable_http_path=MCP_PATH, host=env.settings.bind_host)
    manager = server.session_manager
    return BearerGuard(StreamableHTTPASGIApp(manager), env=env), manager
