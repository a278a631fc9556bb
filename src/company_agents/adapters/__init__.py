"""Adapters: how an agent process is launched and spoken to. A small family on one base (``runner``)."""

from __future__ import annotations

from company_agents.adapters.config import AdapterConfig, load_adapters, render_command

__all__ = ["AdapterConfig", "load_adapters", "render_command"]
