"""Budgets: six nested caps, reserved at claim time, checked as each cost lands (docs/budgets.md)."""

from __future__ import annotations

from company_agents.budgets.overrides import apply_override_decision

__all__ = ["apply_override_decision"]
