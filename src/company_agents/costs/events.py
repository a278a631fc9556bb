"""An agent's ``cost`` event (docs/agent-protocol.md) as a ledger entry, checked field by field.

The agent reports usage; the orchestrator prices it (``pricing``). The only amount an agent may state is
a ``tool`` cost's ``usd`` (an integration's own pricing, recorded as ``reported:agent``). A malformed
event is refused with a reason the run log shows; nothing of it is written.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from company_agents.costs.ledger import Amounts, NewCost, Usage
from company_agents.errors import InvalidInput

# Protocol field → Usage field. ``cacheWriteTokens`` (no duration) is the 5-minute write, the default.
TOKEN_FIELDS = {
    "inputTokens": "input_tokens",
    "outputTokens": "output_tokens",
    "cacheReadTokens": "cache_read_tokens",
    "cacheWriteTokens": "cache_write_5m_tokens",
    "cacheWrite5mTokens": "cache_write_5m_tokens",
    "cacheWrite1hTokens": "cache_write_1h_tokens",
    "reasoningTokens": "reasoning_tokens",
}
MAX_TEXT = 200
# No single report is a fortune: a bound on a stated amount keeps a typo from blocking a company.
MAX_REPORTED_USD = Decimal("10000")


def _text(event: dict[str, Any], name: str) -> str | None:
    value = event.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
        raise InvalidInput(f"cost event: '{name}' must be a string of 1 to {MAX_TEXT} characters")
    return value


def _usd(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidInput("cost event: 'usd' must be a decimal string such as \"0.0125\"")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise InvalidInput(f"cost event: 'usd' is not a number: {value!r}") from None
    if not amount.is_finite() or amount < 0 or amount > MAX_REPORTED_USD:
        raise InvalidInput(f"cost event: 'usd' must be between 0 and {MAX_REPORTED_USD}")
    return amount


def cost_from_event(event: dict[str, Any]) -> NewCost:
    """The entry an event asks for, unpriced unless it is a tool cost with its own amount."""
    tokens: dict[str, int] = {}
    for field_name, attr in TOKEN_FIELDS.items():
        value = event.get(field_name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidInput(f"cost event: '{field_name}' must be a whole number ≥ 0")
        tokens[attr] = tokens.get(attr, 0) + value
    kind = event.get("kind", "llm")
    if kind not in ("llm", "tool"):
        raise InvalidInput("cost event: 'kind' must be 'llm' or 'tool'")
    billing = event.get("billing", "api")
    if billing not in ("api", "subscription"):
        raise InvalidInput("cost event: 'billing' must be 'api' or 'subscription'")
    if kind == "tool":
        if "usd" not in event:
            raise InvalidInput("cost event: a tool cost needs 'usd'")
        usd = _usd(event["usd"])
        amounts = Amounts(usd, usd, usd, "reported:agent")
    else:
        amounts = Amounts.unpriced_usage()
    details: dict[str, Any] = {k: v for k, v in event.items() if k in ("name", "note")}
    if kind == "llm" and event.get("usd") is not None:
        # The agent's own estimate is kept beside the entry for comparison; it is never what counts.
        details["reportedUsd"] = str(_usd(event["usd"]))
    return NewCost(
        kind=kind,
        usage=Usage(**tokens),
        amounts=amounts,
        model=_text(event, "model"),
        provider=_text(event, "provider"),
        billing=billing,
        idempotency_key=_text(event, "id"),
        details=details,
    )
