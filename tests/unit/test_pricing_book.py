"""The price book offline: hand-computed amounts, our token convention, unknown models, no network."""

from __future__ import annotations

import socket
from decimal import Decimal
from typing import Any

import pytest

from company_agents.adapters.config import AdapterConfig
from company_agents.costs.ledger import Usage
from company_agents.costs.runtime import runtime_cost
from company_agents.pricing import Quote, amounts_for
from company_agents.pricing.book import book_price, book_source, book_usage, usd_text
from company_agents.pricing.overrides import Rates


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the price book must not reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_sonnet_with_cache_reads_and_both_cache_writes_matches_the_hand_computed_price() -> None:
    # claude-sonnet-4-5 per million: input $3, output $15, cache read $0.30, 5 m write $3.75, 1 h write $6.
    usage = Usage(
        input_tokens=1000,
        output_tokens=500,
        cache_read_tokens=2000,
        cache_write_5m_tokens=3000,
        cache_write_1h_tokens=4000,
    )
    expected = (
        1000 * Decimal("3") + 500 * Decimal("15") + 2000 * Decimal("0.30") + 3000 * Decimal("3.75")
    ) / 1_000_000 + 4000 * Decimal("6") / 1_000_000
    found = book_price("claude-sonnet-4-5", "anthropic", usage)
    assert found is not None
    assert found.usd == expected == Decimal("0.04635")
    assert found.source == book_source() == "book:genai-prices@0.2.3"


def test_our_uncached_input_becomes_the_book_s_inclusive_input() -> None:
    counted: Any = book_usage(Usage(input_tokens=504, cache_read_tokens=1000, cache_write_5m_tokens=123))
    assert (counted.input_tokens, counted.cache_read_tokens, counted.cache_write_tokens) == (1627, 1000, 123)


def test_openai_cache_reads_and_a_provider_prefix() -> None:
    # gpt-5 per million: input $1.25, cached input $0.125, output $10.
    usage = Usage(input_tokens=1000, output_tokens=200, cache_read_tokens=4000)
    found = book_price("gpt-5", None, usage)
    assert found is not None and found.usd == Decimal("0.00375")
    prefixed = book_price("openai/gpt-5", None, usage)
    assert prefixed is not None and prefixed.usd == found.usd and prefixed.model_id == "gpt-5"


def test_an_unknown_model_has_no_price_rather_than_zero() -> None:
    assert book_price("our-own-finetune-7b", None, Usage(input_tokens=10, output_tokens=10)) is None
    assert book_price("our-own-finetune-7b", "anthropic", Usage(input_tokens=10)) is None
    assert amounts_for("api", None).unpriced and amounts_for("api", None).effective_usd is None


def test_nothing_started_the_book_s_background_refresh() -> None:
    from genai_prices import data_snapshot, update_prices

    book_price("claude-opus-4-5", None, Usage(input_tokens=1))
    assert data_snapshot._custom_snapshot is None
    assert update_prices._shared_updater.ref_count == 0


def test_subscription_usage_is_billed_nothing_and_imputed_at_list_price() -> None:
    quote = Quote(Decimal("0.5"), "book:x")
    sub, api = amounts_for("subscription", quote), amounts_for("api", quote)
    assert (sub.billed_usd, sub.imputed_usd, sub.effective_usd) == (
        Decimal(0),
        Decimal("0.5"),
        Decimal("0.5"),
    )
    assert (api.billed_usd, api.imputed_usd, api.effective_usd) == (Decimal("0.5"),) * 3


def test_override_rates_fall_back_to_the_input_price_never_to_zero() -> None:
    usage = Usage(
        input_tokens=1_000_000,
        output_tokens=1_000_000,
        cache_read_tokens=1_000_000,
        cache_write_5m_tokens=1_000_000,
        cache_write_1h_tokens=1_000_000,
    )
    bare = Rates(Decimal("2"), Decimal("8"))
    assert bare.price(usage) == Decimal("2") * 4 + Decimal("8")
    full = Rates(Decimal("2"), Decimal("8"), Decimal("0.2"), Decimal("2.5"), Decimal("4"))
    assert full.price(usage) == Decimal("16.7")
    assert Rates(Decimal("1"), Decimal("1")).price(Usage(input_tokens=1)) == Decimal("0.00000100")


def test_the_runtime_cost_is_seconds_times_the_adapter_rate() -> None:
    free = AdapterConfig(name="p", type="process", binary="x")
    paid = AdapterConfig(name="p", type="process", binary="x", runtime_usd_per_second=Decimal("0.001"))
    assert runtime_cost(free, 10.0) is None
    cost = runtime_cost(paid, 2.5)
    assert cost is not None and cost.kind == "runtime" and cost.idempotency_key == "runtime"
    assert cost.amounts.effective_usd == Decimal("0.0025")
    assert cost.amounts.price_source == "rate:adapter:p"


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (Decimal(0), "0.00000000"),
        (Decimal("0E-12"), "0.00000000"),
        (Decimal("1.5"), "1.50000000"),
        (Decimal("0.000000015"), "0.00000002"),
        (Decimal("-2"), "-2.00000000"),
        (Decimal("12345678901"), "12345678901.00000000"),
    ],
)
def test_amounts_print_in_fixed_point_never_in_exponent_form(amount: Decimal, text: str) -> None:
    assert usd_text(amount) == text
