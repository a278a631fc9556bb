"""Breach levels of one scope, from what it spent against its cap (docs/budgets.md)."""

from __future__ import annotations

from decimal import Decimal

SOFT = Decimal("0.8")
HARD = Decimal("1")
CATASTROPHIC = Decimal("1.2")
# In order: a scope that reached a level has reached every level before it.
LEVELS = ("soft", "hard", "catastrophic")


def level_of(scope: str, cap: Decimal, spent: Decimal) -> str | None:
    """``soft`` at 80% of the cap, ``hard`` at 100%, ``catastrophic`` at 120% or on any company overrun
    (spent strictly over the company's cap); ``None`` below 80%."""
    if spent <= 0:
        return None
    if spent >= cap * CATASTROPHIC or (scope == "company" and spent > cap):
        return "catastrophic"
    if spent >= cap * HARD:
        return "hard"
    if spent >= cap * SOFT:
        return "soft"
    return None


def levels_up_to(level: str | None) -> tuple[str, ...]:
    """Every level a scope at ``level`` has reached (a jump from 70% to 110% reached soft too)."""
    if level is None:
        return ()
    return LEVELS[: LEVELS.index(level) + 1]


def percent(cap: Decimal, spent: Decimal) -> Decimal | None:
    if cap <= 0:
        return None
    return (spent * 100 / cap).quantize(Decimal("0.1"))
