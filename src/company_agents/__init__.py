"""Company Agents: a local-first orchestrator for companies of AI agents, on PostgreSQL."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
