"""Gemini CLI (``gemini -p --output-format stream-json``): launch and stream (docs/adapters.md §gemini-cli).

Usage comes once, in the ``result`` event's ``stats`` (keyed by the model version the server
answered with); ``input_tokens`` includes the cached ones, ``input`` does not. No cost field.
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

SETTINGS = f"{AGENT_HOME}/.gemini/settings.json"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class GeminiCli:
    kind = "gemini-cli"
    key_env = "GEMINI_API_KEY"
    base_url_env = "GOOGLE_GEMINI_BASE_URL"
    bin_env = "GEMINI_CLI_BIN"
    model_env = "GEMINI_CLI_MODEL"
    extra_args_env = "GEMINI_CLI_EXTRA_ARGS"
    default_model = "gemini-2.5-flash"

    def version_argv(self, binary: str) -> list[str]:
        return [binary, "--version"]

    def launch(self, ctx: LaunchContext, binary: str) -> LaunchPlan:
        settings: dict[str, Any] = {
            "mcpServers": {
                MCP_SERVER_NAME: {
                    "httpUrl": ctx.mcp_url,
                    "headers": {"Authorization": f"Bearer {ctx.lease_token}"},
                    "trust": True,
                }
            },
            "privacy": {"usageStatisticsEnabled": False},  # else it reaches play.googleapis.com
            "telemetry": {"enabled": False},
        }
        if ctx.api_key is not None:
            # GOOGLE_GEMINI_BASE_URL alone selects an auth type the CLI then refuses (rc 41).
            settings["security"] = {"auth": {"selectedType": "gemini-api-key"}}
        # No flag appends to its system prompt (GEMINI_SYSTEM_MD replaces it): the role comes first, and
        # a resumed session has it already.
        prompt = ctx.prompt if ctx.resume else f"{ctx.system_prompt}\n\n---\n\n{ctx.prompt}"
        argv = [
            binary,
            "-p",
            prompt,
            "--output-format",
            "stream-json",
            "--skip-trust",
            "--approval-mode",
            ctx.adapter.permission_mode or "yolo",
        ]
        if ctx.model:
            argv += ["-m", ctx.model]  # also skips the router request of the default `auto`
        if ctx.resume:
            argv += ["--resume", ctx.resume]
        argv += ctx.adapter.extra_args
        env = {
            "GEMINI_CLI_HOME": str(ctx.home),
            # Else it relaunches itself as a child node process and the parent ignores SIGTERM.
            "GEMINI_CLI_NO_RELAUNCH": "true",
        }
        if ctx.api_key is not None:
            env[self.key_env] = ctx.api_key
        if ctx.base_url:
            env[self.base_url_env] = ctx.base_url
        return LaunchPlan(argv=argv, env=env, files={SETTINGS: json.dumps(settings)})

    def can_resume(self, home: Path, session_id: str, workspace: Path) -> bool:
        """Gemini keeps sessions per project (``projects.json`` maps a directory to its name) and looks
        only in the current one's: the previous run's project is mapped to this run's workspace."""
        if not safe_session_id(session_id):
            return False
        gemini = home / ".gemini"
        for chat in gemini.glob(f"tmp/*/chats/session-*-{session_id[:8]}.jsonl"):
            with chat.open() as fh:
                first = fh.readline()
            try:
                header = json.loads(first)
            except json.JSONDecodeError:
                continue
            if not isinstance(header, dict) or header.get("sessionId") != session_id:
                continue
            project = chat.parent.parent.name
            registry = gemini / "projects.json"
            try:
                known = json.loads(registry.read_text())
            except (OSError, json.JSONDecodeError):
                known = {}
            projects = _dict(known.get("projects") if isinstance(known, dict) else None)
            projects = {k: v for k, v in projects.items() if v != project}
            projects[str(workspace)] = project
            registry.write_text(json.dumps({"projects": projects}, indent=2))
            for kind in ("tmp", "history"):
                marker = gemini / kind / project / ".project_root"
                if marker.parent.is_dir():
                    marker.write_text(str(workspace))
            return True
        return False

    def parser(self, model: str | None) -> GeminiStream:
        return GeminiStream(model=model or self.default_model)


@dataclass
class GeminiStream:
    model: str
    session_id: str = ""
    text: str = ""
    seen_tools: set[str] = field(default_factory=set)

    def feed(self, event: dict[str, Any]) -> list[CliEvent]:
        kind = event.get("type")
        if kind == "init":
            self.session_id = str(event.get("session_id") or "")
            return [CliEvent("session", session_id=self.session_id)]
        if kind == "tool_use":
            tool_id = str(event.get("tool_id") or "")
            if tool_id not in self.seen_tools:
                self.seen_tools.add(tool_id)
                return [CliEvent("tool_call", name=str(event.get("tool_name") or "?"))]
            return []
        if kind == "tool_result" and event.get("status") == "error":
            return [CliEvent("progress", text=f"tool error: {event.get('output')}"[:500])]
        if kind == "message" and event.get("role") == "assistant":
            content = event.get("content")
            if isinstance(content, str):
                self.text = self.text + content if event.get("delta") else content
            return []
        if kind == "result":
            return self._result(event)
        return []

    def end(self) -> list[CliEvent]:
        return []

    def stderr(self, line: str) -> str | None:
        # An MCP server that did not connect is only said here; the run would go on without our tools.
        if "MCP issues detected" in line:
            return "the company-agents MCP server did not connect (Gemini CLI: MCP issues detected)"
        return None

    def _result(self, event: dict[str, Any]) -> list[CliEvent]:
        out: list[CliEvent] = []
        stats = _dict(event.get("stats"))
        models = _dict(stats.get("models"))
        per_model = {m: v for m, v in models.items() if isinstance(v, dict)} or {self.model: stats}
        for model, raw in per_model.items():
            total = _int(raw.get("input_tokens"))
            cached = _int(raw.get("cached"))
            uncached = _int(raw.get("input")) if "input" in raw else max(total - cached, 0)
            usage = Usage(
                input_tokens=uncached, output_tokens=_int(raw.get("output_tokens")), cache_read_tokens=cached
            )
            if usage == Usage():
                continue
            cost = NewCost(
                kind="llm",
                usage=usage,
                amounts=Amounts.unpriced_usage(),
                model=model,
                provider="google",
                idempotency_key=f"gemini-cli:{self.session_id}:result:{model}",
                details={"cli": "gemini-cli", "sessionId": self.session_id},
            )
            out.append(CliEvent("cost", cost=cost))
        if event.get("status") == "success":
            out.append(CliEvent("result", ok=True, text=self.text))
        else:
            error = _dict(event.get("error"))
            reason = f"Gemini CLI failed: {error.get('message') or event.get('status')}"
            out.append(CliEvent("result", ok=False, reason=reason[:2000], text=self.text))
        return out
