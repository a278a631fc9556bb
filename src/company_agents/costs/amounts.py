"""Amounts in USD as people type them: decimal strings, never floats (docs/design.md §10)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from company_agents.errors import InvalidInput

MAX_USD = Decimal(10) ** 10


def parse_usd(value: str, *, field: str = "usd", negative: bool = False) -> Decimal:
    """``value`` as a finite ``Decimal``; below zero only when ``negative`` (an adjustment, or a value
    whose own check lies further in, such as a price the schema refuses below zero)."""
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise InvalidInput(f"{value!r} is not an amount in USD", field=field) from None
    if not amount.is_finite() or (amount < 0 and not negative):
        raise InvalidInput(f"{value!r} is not an amount in USD", field=field)
    if abs(amount) >= MAX_USD:  # the money columns hold ten integer digits
        raise InvalidInput(
            f"{value!r} is more than the largest amount stored (< 10,000,000,000 USD)", field=field
        )
    return amount
