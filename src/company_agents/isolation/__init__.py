"""How agents are kept from reaching around the orchestrator (docs/security.md)."""

from __future__ import annotations

from company_agents.isolation.launch import Launch, Launcher
from company_agents.isolation.limits import Limits, limit_hit, limits_for
from company_agents.isolation.modes import Isolation, available_modes, choose_isolation, unisolated
from company_agents.isolation.processes import RunProcesses

__all__ = [
    "Isolation",
    "Launch",
    "Launcher",
    "Limits",
    "RunProcesses",
    "available_modes",
    "choose_isolation",
    "limit_hit",
    "limits_for",
    "unisolated",
]
