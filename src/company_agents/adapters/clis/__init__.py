"""The agent-CLI adapters (Claude Code, Codex, Gemini CLI): how each is launched and how its stdout
stream becomes our events. The process handling stays in ``adapters.runner``, shared by every adapter."""

from __future__ import annotations

from company_agents.adapters.clis.base import CliDriver, CliEvent, LaunchContext, LaunchPlan, StreamParser
from company_agents.adapters.clis.registry import driver_for

__all__ = ["CliDriver", "CliEvent", "LaunchContext", "LaunchPlan", "StreamParser", "driver_for"]
