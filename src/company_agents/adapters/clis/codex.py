"""OpenAI Codex (``codex exec --json``): launch and stream (docs/adapters.md §codex).

Usage comes per turn (``turn.completed``): ``input_tokens`` includes the cached ones and
``output_tokens`` the reasoning ones; there is no cost field, so every entry is priced by us. The model
is never in the stream: it is the one we passed with ``-m``.
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
from company_agents.isolation.launch import AGENT_HOME

DEFAULT_BASE_URL = "https://api.openai.com/v1"
PROVIDER = "ca"  # our own provider entry: its endpoint and zero retries are ours to set
TOKEN_ENV = "CA_LEASE_TOKEN"
CODEX_DIR = ".codex"  # the run's lease token, already in its environment (adapters.runner)


def _toml(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class Codex:
    kind = "codex"
    key_env = "OPENAI_API_KEY"
    base_url_env = "OPENAI_BASE_URL"
    bin_env = "CODEX_BIN"
    model_env = "CODEX_MODEL"
    extra_args_env = "CODEX_EXTRA_ARGS"
    default_model = "gpt-5.5"

    def version_argv(self, binary: str) -> list[str]:
        return [binary, "--version"]

    def launch(self, ctx: LaunchContext, binary: str) -> LaunchPlan:
        adapter = ctx.adapter
        base_url = ctx.base_url or DEFAULT_BASE_URL
        # $CODEX_HOME/config.toml (0600, inside the run's workspace). The MCP bearer is read from the
        # environment by name (bearer_token_env_var): the token itself is in no file and no argv.
        config = "\n".join(
            [
                f"model_provider = {_toml(PROVIDER)}",
                "check_for_update_on_startup = false",
                f"developer_instructions = {_toml(ctx.system_prompt)}",
                "",
                "[features]",
                "plugins = false  # plugin sync reaches github.com",
                "",
                f"[model_providers.{PROVIDER}]",
                f"name = {_toml('company-agents')}",
                f"base_url = {_toml(base_url)}",
                f"env_key = {_toml(self.key_env)}",
                'wire_api = "responses"',
                # Fail fast: the orchestrator retries the task per its policy.
                "request_max_retries = 0",
                "stream_max_retries = 0",
                "",
                f"[mcp_servers.{MCP_SERVER_NAME}]",
                f"url = {_toml(ctx.mcp_url)}",
                f"bearer_token_env_var = {_toml(TOKEN_ENV)}",
                'default_tools_approval_mode = "approve"  # else our tools "require approval"',
                "required = true  # a server that does not connect fails the run at once",
                "",
            ]
        )
        sandbox = adapter.sandbox or "workspace-write"
        # Not --ephemeral: the rollout ($CODEX_HOME/sessions/…) is what a later run resumes.
        if ctx.resume:
            # `exec resume` has no --sandbox flag: the same mode through its config key.
            argv = [
                binary,
                "exec",
                "resume",
                "--json",
                "--skip-git-repo-check",
                "-c",
                f"sandbox_mode={_toml(sandbox)}",
            ]
        else:
            argv = [binary, "exec", "--json", "--skip-git-repo-check", "-s", sandbox]
        if ctx.model:
            argv += ["-m", ctx.model]
        argv += [*adapter.extra_args, "--"]
        if ctx.resume:
            argv.append(ctx.resume)
        argv.append(ctx.prompt)
        env = {"CODEX_HOME": str(ctx.home / CODEX_DIR)}
        if ctx.api_key is not None:
            env[self.key_env] = ctx.api_key
        return LaunchPlan(argv=argv, env=env, files={f"{AGENT_HOME}/{CODEX_DIR}/config.toml": config})

    def can_resume(self, home: Path, session_id: str, workspace: Path) -> bool:  # noqa: ARG002
        sessions = home / CODEX_DIR / "sessions"
        if not (safe_session_id(session_id) and any(sessions.glob(f"**/rollout-*-{session_id}.jsonl"))):
            return False
        # Its thread index (state_N.sqlite) holds the rollout's absolute path in the previous run's
        # workspace, gone by now ("no rollout found"); without the index Codex finds the rollout by id.
        for index in (home / CODEX_DIR).glob("state_*.sqlite*"):
            index.unlink(missing_ok=True)
        return True

    def parser(self, model: str | None) -> CodexStream:
        return CodexStream(model=model or self.default_model)


@dataclass
class CodexStream:
    model: str
    thread_id: str = ""
    turn: int = 0
    failed: str | None = None
    last_error: str = ""
    text: str = ""
    completed_turns: int = 0
    seen_tools: set[str] = field(default_factory=set)

    def feed(self, event: dict[str, Any]) -> list[CliEvent]:
        kind = event.get("type")
        if kind == "thread.started":
            self.thread_id = str(event.get("thread_id") or "")
            return [CliEvent("session", session_id=self.thread_id)]
        if kind == "turn.started":
            self.turn += 1
            return []
        if kind in ("item.started", "item.completed") and isinstance(event.get("item"), dict):
            return self._item(kind, event["item"])
        if kind == "turn.completed":
            self.completed_turns += 1
            return self._usage(event.get("usage"))
        if kind == "turn.failed":
            error = event["error"] if isinstance(event.get("error"), dict) else {}
            self.failed = str(error.get("message") or self.last_error or "the turn failed")
            return []
        if kind == "error":
            self.last_error = str(event.get("message") or "")
        return []

    def stderr(self, line: str) -> str | None:  # noqa: ARG002 (its stream says everything)
        return None

    def end(self) -> list[CliEvent]:
        if self.failed is not None:
            return [
                CliEvent("result", ok=False, reason=f"Codex failed: {self.failed}"[:2000], text=self.text)
            ]
        if self.completed_turns:
            return [CliEvent("result", ok=True, text=self.text)]
        return []

    def _item(self, kind: str, item: dict[str, Any]) -> list[CliEvent]:
        item_type = item.get("type")
        if item_type in ("mcp_tool_call", "command_execution", "file_change", "web_search"):
            item_id = str(item.get("id") or "")
            if item_id and item_id not in self.seen_tools:
                self.seen_tools.add(item_id)
                name = (
                    f"{item.get('server')}.{item.get('tool')}" if item_type == "mcp_tool_call" else item_type
                )
                return [CliEvent("tool_call", name=str(name))]
        elif kind == "item.completed" and item_type == "agent_message":
            self.text = str(item.get("text") or "")
        elif kind == "item.completed" and item_type == "error":
            # A warning (say, unknown model metadata), not a failure.
            return [CliEvent("progress", text=str(item.get("message") or "")[:500])]
        return []

    def _usage(self, raw: Any) -> list[CliEvent]:
        usage = raw if isinstance(raw, dict) else {}
        cached = _int(usage.get("cached_input_tokens"))
        written = _int(usage.get("cache_write_input_tokens"))
        tokens = Usage(
            input_tokens=max(_int(usage.get("input_tokens")) - cached - written, 0),
            output_tokens=_int(usage.get("output_tokens")),
            cache_read_tokens=cached,
            cache_write_5m_tokens=written,
            reasoning_tokens=_int(usage.get("reasoning_output_tokens")),
        )
        cost = NewCost(
            kind="llm",
            usage=tokens,
            amounts=Amounts.unpriced_usage(),
            model=self.model,
            provider="openai",
            idempotency_key=f"codex:{self.thread_id}:turn:{self.turn}",
            details={"cli": "codex", "threadId": self.thread_id},
        )
        return [CliEvent("cost", cost=cost)]
