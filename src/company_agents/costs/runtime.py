"""The ``runtime`` cost: an agent process's seconds at its adapter's rate (``runtimeUsdPerSecond``).

Written once per run, just before the run's final transition; the idempotency key ``runtime`` keeps a
retried write from counting twice. At the default rate 0 nothing is written (no row per run for free).
"""

from __future__ import annotations

from decimal import Decimal

from company_agents.adapters.config import AdapterConfig
from company_agents.costs.ledger import Amounts, NewCost, Usage
from company_agents.pricing.book import quantize

RUNTIME_KEY = "runtime"


def runtime_cost(adapter: AdapterConfig, seconds: float) -> NewCost | None:
    if adapter.runtime_usd_per_second <= 0:
        return None
    elapsed = Decimal(str(round(max(seconds, 0.0), 3)))
    usd = quantize(elapsed * adapter.runtime_usd_per_second)
    return NewCost(
        kind="runtime",
        usage=Usage(),
        amounts=Amounts(usd, usd, usd, f"rate:adapter:{adapter.name}"),
        idempotency_key=RUNTIME_KEY,
        details={"seconds": str(elapsed), "usdPerSecond": str(adapter.runtime_usd_per_second)},
    )
