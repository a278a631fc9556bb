"""The agent tools, once: arguments (``calls``), authentication (``auth``), fencing (``fencing``) and one
function per tool (``service``, ``memory_tools``, ``subtasks``, ``assets``). The HTTP endpoint
(``api/tools.py``) and the MCP server (``api/mcp.py``) are thin faces of these."""

from __future__ import annotations

from company_agents.agent_tools.fencing import IMPLIED, Fence, ToolEnv

__all__ = ["IMPLIED", "Fence", "ToolEnv"]
