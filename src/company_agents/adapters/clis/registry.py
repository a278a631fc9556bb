"""The driver of each agent-CLI adapter type."""

from __future__ import annotations

from company_agents.adapters.clis.base import CliDriver


def driver_for(kind: str) -> CliDriver:
    # Lazy: a process-adapter run never imports the CLI drivers.
    if kind == "claude-code":
        from company_agents.adapters.clis.claude_code import ClaudeCode

        return ClaudeCode()
    if kind == "codex":
        from company_agents.adapters.clis.codex import Codex

        return Codex()
    if kind == "gemini-cli":
        from company_agents.adapters.clis.gemini_cli import GeminiCli

        return GeminiCli()
    raise ValueError(f"no agent-CLI driver for adapter type {kind!r}")
