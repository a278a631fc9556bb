"""Claude Code (``claude -p``): launch and stream (docs/adapters.md §claude-code).

Usage: ``assistant`` events repeat the ``message_start`` snapshot (``output_tokens`` 1) on every content
block, so they are never added up. With ``--include-partial-messages`` each request's true numbers come
as ``stream_event`` ``message_start`` (input, cache) and ``message_delta`` (output). A message is
recorded once the next one starts (one entry per request, keyed by its message id, so a budget stops
the run mid-way); the last one waits for the ``result``, whose totals settle any difference and whose
``total_cost_usd`` is stored beside our price as a cross-check. A stream that ends without a result
still records every message it saw.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from company_agents.adapters.clis.base import (
    MCP_SERVER_NAME,
    CliEvent,
    LaunchContext,
    LaunchPlan,
    safe_session_id,
)
from company_agents.costs.ledger import Amounts, NewCost, Usage

MCP_CONFIG = ".run/cli/claude-mcp.json"
DEFAULT_TOOLS = f"mcp__{MCP_SERVER_NAME},Read,Edit,Write,Glob,Grep,Bash"


@dataclass
class _Message:
    id: str
    model: str
    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class ClaudeCode:
    kind = "claude-code"
    key_env = "ANTHROPIC_API_KEY"
    base_url_env = "ANTHROPIC_BASE_URL"
    bin_env = "CLAUDE_CODE_BIN"
    model_env = "CLAUDE_CODE_MODEL"
    extra_args_env = "CLAUDE_CODE_EXTRA_ARGS"
    default_model = "claude-sonnet-4-5"

    def version_argv(self, binary: str) -> list[str]:
        return [binary, "--version"]

    def launch(self, ctx: LaunchContext, binary: str) -> LaunchPlan:
        adapter = ctx.adapter
        mode = adapter.permission_mode or "dontAsk"
        mcp = {
            "mcpServers": {
                MCP_SERVER_NAME: {
                    "type": "http",
                    "url": ctx.mcp_url,
                    "headers": {"Authorization": f"Bearer {ctx.lease_token}"},
                }
            }
        }
        argv = [
            binary,
            "-p",
            ctx.prompt,
            "--output-format",
            "stream-json",
            "--verbose",
            "--include-partial-messages",
            "--mcp-config",
            str(ctx.workspace / MCP_CONFIG),
            "--strict-mcp-config",
            "--permission-mode",
            mode,
            "--allowedTools",
            DEFAULT_TOOLS,
            "--max-turns",
            str(adapter.max_turns or 50),
            "--append-system-prompt",
            ctx.system_prompt,
        ]
        # The session is kept (CLAUDE_CONFIG_DIR/projects/…/<id>.jsonl): a later run of the task may
        # resume it (docs/adapters.md §Sessions).
        if ctx.resume:
            argv += ["--resume", ctx.resume]
        if ctx.model:
            argv += ["--model", ctx.model]
        argv += adapter.extra_args
        env = {
            "CLAUDE_CONFIG_DIR": str(ctx.home / ".claude"),
            # MCP tools are listed to the model directly instead of behind ToolSearch.
            "ENABLE_TOOL_SEARCH": "false",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            # Fail fast: the orchestrator retries the task per its policy instead of minutes of backoff.
            "CLAUDE_CODE_MAX_RETRIES": "0",
        }
        if mode == "bypassPermissions":
            env["IS_SANDBOX"] = "1"  # the run is sandboxed by us; Claude refuses this mode as root otherwise
        if ctx.api_key is not None:
            env[self.key_env] = ctx.api_key
        if ctx.base_url:
            env[self.base_url_env] = ctx.base_url
        return LaunchPlan(argv=argv, env=env, files={MCP_CONFIG: json.dumps(mcp)})

    def can_resume(self, home: Path, session_id: str, workspace: Path) -> bool:  # noqa: ARG002
        # Claude finds a session of another project dir (the previous run's workspace) by its id.
        projects = home / ".claude" / "projects"
        return safe_session_id(session_id) and any(projects.glob(f"*/{session_id}.jsonl"))

    def parser(self, model: str | None) -> ClaudeStream:
        return ClaudeStream(default_model=model or self.default_model)


@dataclass
class ClaudeStream:
    default_model: str
    billing: str = "api"
    session_id: str = ""
    pending: _Message | None = None
    recorded: dict[str, Usage] = field(default_factory=dict)  # per model, what earlier entries held
    seen_messages: set[str] = field(default_factory=set)
    seen_tools: set[str] = field(default_factory=set)
    result_seen: bool = False

    def feed(self, event: dict[str, Any]) -> list[CliEvent]:
        kind = event.get("type")
        if isinstance(event.get("session_id"), str):
            self.session_id = event["session_id"]
        if kind == "system" and event.get("subtype") == "init":
            return self._init(event)
        if kind == "stream_event" and isinstance(event.get("event"), dict):
            return self._stream(event["event"])
        if kind == "assistant" and isinstance(event.get("message"), dict):
            return self._assistant(event["message"])
        if kind == "result":
            return self._result(event)
        return []

    def stderr(self, line: str) -> str | None:  # noqa: ARG002 (its stream says everything)
        return None

    def end(self) -> list[CliEvent]:
        return [] if self.result_seen else self._flush()

    def _init(self, event: dict[str, Any]) -> list[CliEvent]:
        if event.get("apiKeySource") in (None, "none"):
            self.billing = "subscription"  # the user's own login: imputed, not billed
        servers = [s for s in event.get("mcp_servers") or [] if isinstance(s, dict)]
        ours = [s for s in servers if s.get("name") == MCP_SERVER_NAME]
        out = [CliEvent("session", session_id=self.session_id)]
        if not ours or ours[0].get("status") != "connected":
            status = ours[0].get("status") if ours else "absent"
            out.append(
                CliEvent("mcp_failed", reason=f"the company-agents MCP server did not connect ({status})")
            )
        return out

    def _stream(self, raw: dict[str, Any]) -> list[CliEvent]:
        kind = raw.get("type")
        if kind == "message_start" and isinstance(raw.get("message"), dict):
            message = raw["message"]
            out = self._begin(str(message.get("id") or ""), message)
            if self.pending is not None:
                self._snapshot(self.pending, message.get("usage"))
            return out
        if kind == "message_delta" and self.pending is not None:
            usage = raw.get("usage") or {}
            # Cumulative for the message: the last delta holds its output count.
            self.pending.output = max(self.pending.output, _int(usage.get("output_tokens")))
        return []

    def _assistant(self, message: dict[str, Any]) -> list[CliEvent]:
        out: list[CliEvent] = []
        message_id = str(message.get("id") or "")
        if message_id and message_id not in self.seen_messages:
            # No partial messages (another CLI version, or a flag removed): the snapshot is all there is.
            out += self._begin(message_id, message)
            if self.pending is not None:
                self._snapshot(self.pending, message.get("usage"))
                self.pending.output = max(
                    self.pending.output, _int((message.get("usage") or {}).get("output_tokens"))
                )
        for block in message.get("content") or []:
            if isinstance(block, dict) and block.get("type") == "tool_use":
                tool_id = str(block.get("id") or "")
                if tool_id and tool_id not in self.seen_tools:
                    self.seen_tools.add(tool_id)
                    out.append(CliEvent("tool_call", name=str(block.get("name") or "?")))
            elif isinstance(block, dict) and block.get("type") == "text" and block.get("text"):
                out.append(CliEvent("progress", text=str(block["text"])[:500]))
        return out

    def _begin(self, message_id: str, message: dict[str, Any]) -> list[CliEvent]:
        if not message_id or message_id in self.seen_messages:
            return []
        self.seen_messages.add(message_id)
        out = self._flush()
        model = str(message.get("model") or self.default_model)
        self.pending = None if model == "<synthetic>" else _Message(message_id, model)
        return out

    @staticmethod
    def _snapshot(message: _Message, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        message.input = _int(usage.get("input_tokens"))
        message.cache_read = _int(usage.get("cache_read_input_tokens"))
        written = _int(usage.get("cache_creation_input_tokens"))
        split = _dict(usage.get("cache_creation"))
        message.cache_write_1h = min(_int(split.get("ephemeral_1h_input_tokens")), written)
        message.cache_write_5m = written - message.cache_write_1h

    def _flush(self, details: dict[str, Any] | None = None, residual: Usage | None = None) -> list[CliEvent]:
        message, self.pending = self.pending, None
        if message is None:
            return []
        usage = Usage(
            input_tokens=message.input,
            output_tokens=message.output,
            cache_read_tokens=message.cache_read,
            cache_write_5m_tokens=message.cache_write_5m,
            cache_write_1h_tokens=message.cache_write_1h,
        )
        if residual is not None:
            usage = _add(usage, residual)
        self.recorded[message.model] = _add(self.recorded.get(message.model, Usage()), usage)
        return [self._cost(message.model, usage, f"claude-code:{message.id}", details or {})]

    def _cost(self, model: str, usage: Usage, key: str, details: dict[str, Any]) -> CliEvent:
        cost = NewCost(
            kind="llm",
            usage=usage,
            amounts=Amounts.unpriced_usage(),
            model=model,
            provider="anthropic",
            billing=self.billing,
            idempotency_key=key,
            details={"cli": "claude-code", "sessionId": self.session_id, **details},
        )
        return CliEvent("cost", cost=cost)

    def _result(self, event: dict[str, Any]) -> list[CliEvent]:
        self.result_seen = True
        out: list[CliEvent] = []
        totals = _dict(event.get("modelUsage"))
        cross = {"cliTotalCostUsd": str(event.get("total_cost_usd"))} if "total_cost_usd" in event else {}
        pending_model = self.pending.model if self.pending is not None else None
        residuals: dict[str, Usage] = {}
        for model, raw in totals.items():
            if not isinstance(raw, dict):
                continue
            reported = Usage(
                input_tokens=_int(raw.get("inputTokens")),
                output_tokens=_int(raw.get("outputTokens")),
                cache_read_tokens=_int(raw.get("cacheReadInputTokens")),
                cache_write_5m_tokens=_int(raw.get("cacheCreationInputTokens"))
                - min(
                    _int(raw.get("cacheCreationEphemeral1hInputTokens")),
                    _int(raw.get("cacheCreationInputTokens")),
                ),
                cache_write_1h_tokens=min(
                    _int(raw.get("cacheCreationEphemeral1hInputTokens")),
                    _int(raw.get("cacheCreationInputTokens")),
                ),
            )
            seen = self.recorded.get(model, Usage())
            if model == pending_model and self.pending is not None:
                p = self.pending
                seen = _add(seen, Usage(p.input, p.output, p.cache_read, p.cache_write_5m, p.cache_write_1h))
            residuals[model] = _sub(reported, seen)
            if "costUSD" in raw:
                cross[f"cliCostUsd:{model}"] = str(raw["costUSD"])
        if pending_model is not None:
            out += self._flush(cross, residuals.pop(pending_model, None))
            cross = {}
        for model, usage in residuals.items():
            if usage != Usage():
                key = f"claude-code:{self.session_id}:result:{model}"
                out.append(self._cost(model, usage, key, cross))
                cross = {}
        is_error = event.get("is_error") is True  # never `subtype`: an API error reports "success"
        text = str(event["result"]) if isinstance(event.get("result"), str) else ""
        reason = ""
        if is_error:
            errors = _list(event.get("errors"))
            status = event.get("api_error_status")
            detail = text or "; ".join(str(e) for e in errors) or str(event.get("terminal_reason") or "error")
            reason = f"Claude Code failed: {detail}" + (f" (API status {status})" if status else "")
        out.append(CliEvent("result", ok=not is_error, reason=reason[:2000], text=text))
        return out


def _add(a: Usage, b: Usage) -> Usage:
    return Usage(
        input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        cache_read_tokens=a.cache_read_tokens + b.cache_read_tokens,
        cache_write_5m_tokens=a.cache_write_5m_tokens + b.cache_write_5m_tokens,
        cache_write_1h_tokens=a.cache_write_1h_tokens + b.cache_write_1h_tokens,
        reasoning_tokens=a.reasoning_tokens + b.reasoning_tokens,
    )


def _sub(a: Usage, b: Usage) -> Usage:
    """What ``a`` holds beyond ``b``, field by field (never below zero: a total is never less)."""
    return Usage(
        input_tokens=max(a.input_tokens - b.input_tokens, 0),
        output_tokens=max(a.output_tokens - b.output_tokens, 0),
        cache_read_tokens=max(a.cache_read_tokens - b.cache_read_tokens, 0),
        cache_write_5m_tokens=max(a.cache_write_5m_tokens - b.cache_write_5m_tokens, 0),
        cache_write_1h_tokens=max(a.cache_write_1h_tokens - b.cache_write_1h_tokens, 0),
        reasoning_tokens=max(a.reasoning_tokens - b.reasoning_tokens, 0),
    )
