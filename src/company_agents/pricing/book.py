"""The price book: ``genai-prices``, pinned exactly and used offline, behind one function.

Never start its ``UpdatePrices`` refresh (an hourly background fetch from GitHub): new prices arrive as
reviewed version bumps of the pinned dependency, so an entry's ``book:genai-prices@<version>`` names the
exact table it was priced from. The bundled table is loaded lazily on the first lookup (about 0.4 s).

Token convention: our ``Usage.input_tokens`` is *uncached* input (Anthropic's convention, and the
protocol's ``inputTokens``); genai-prices wants the inclusive total (uncached + cache reads + cache
writes) in its ``input_tokens`` and takes the 1-hour writes as a subset of ``cache_write_tokens``. The
conversion lives in ``book_usage`` and nowhere else.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from importlib.metadata import version

from company_agents.costs.ledger import Usage

# The ledger stores NUMERIC(18, 8): amounts are rounded here so what is returned is what is stored.
USD_QUANTUM = Decimal("0.00000001")
PER_MTOK = Decimal(1_000_000)


def quantize(usd: Decimal) -> Decimal:
    return usd.quantize(USD_QUANTUM, rounding=ROUND_HALF_UP)


def usd_text(usd: Decimal) -> str:
    """An amount as the API and the CLI print it: fixed point (``str()`` of a quantized zero is
    ``0E-8``, which no reader expects and the API's money pattern refuses)."""
    return format(quantize(usd), "f")


@cache
def book_version() -> str:
    return version("genai-prices")


def book_source() -> str:
    return f"book:genai-prices@{book_version()}"


@dataclass(frozen=True)
class BookPrice:
    usd: Decimal
    model_id: str
    provider_id: str
    source: str


@cache
def _load() -> bool:
    from genai_prices import data_snapshot

    data_snapshot.get_snapshot()  # imports the bundled table (a 1.6 MB module)
    return True


async def load_book() -> None:
    """Load the bundled table once, off the event loop: the first load takes about 0.4 s, which the
    orchestrator's loop (renewing leases, reading agents' output) must not wait for."""
    if _load.cache_info().currsize == 0:
        await asyncio.to_thread(_load)


def book_usage(usage: Usage) -> object:
    """Our usage as genai-prices counts it: cache reads and writes included in ``input_tokens``."""
    from genai_prices import Usage as BookUsage

    return BookUsage(
        input_tokens=usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens,
    )


def _candidates(model: str, provider: str | None) -> list[tuple[str, str | None]]:
    """Lookups to try, most specific first: the stated provider, a ``provider/model`` prefix, the name."""
    tries: list[tuple[str, str | None]] = []
    if provider:
        tries.append((model, provider))
    if "/" in model:
        prefix, _, bare = model.partition("/")
        tries.append((bare, prefix))
        tries.append((bare, None))
    tries.append((model, None))
    return tries


def book_price(
    model: str, provider: str | None, usage: Usage, *, at: datetime | None = None
) -> BookPrice | None:
    """The list price of ``usage`` on ``model`` at time ``at`` (now by default); ``None`` when the book
    does not know the model. Never $0 for an unknown model: the caller records it as unpriced."""
    from genai_prices import calc_price

    when = at or datetime.now(tz=UTC)
    counted = book_usage(usage)
    for name, provider_id in _candidates(model, provider):
        try:
            result = calc_price(counted, name, provider_id=provider_id, genai_request_timestamp=when)
        except LookupError:
            continue
        return BookPrice(quantize(result.total_price), result.model.id, result.provider.id, book_source())
    return None
