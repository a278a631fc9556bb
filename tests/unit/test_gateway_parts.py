"""The gateway's pure parts: usage read from streams split anywhere, the path and token forms, the
loop rule and rate limit, and the in-flight reservations (docs/gateway.md)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest

from company_agents.costs.ledger import Usage
from company_agents.gateway import auth
from company_agents.gateway.formats import formats
from company_agents.gateway.policy import RunPolicy
from company_agents.gateway.reserve import InFlight


def sse(events: list[dict[str, Any]]) -> bytes:
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


ANTHROPIC = sse(
    [
        {
            "type": "message_start",
            "message": {
                "model": "claude-x",
                "usage": {
                    "input_tokens": 10,
                    "output_tokens": 1,
                    "cache_read_input_tokens": 3,
                    "cache_creation_input_tokens": 4,
                },
            },
        },
        {"type": "content_block_delta", "delta": {"text": "data: {not json\n"}},
        {"type": "message_delta", "usage": {"output_tokens": 7}},
        {"type": "message_stop"},
    ]
)
OPENAI = sse(
    [
        {"type": "response.created", "response": {"model": "gpt-x"}},
        {
            "type": "response.completed",
            "response": {
                "model": "gpt-x",
                "usage": {
                    "input_tokens": 13,
                    "input_tokens_details": {"cached_tokens": 3},
                    "output_tokens": 7,
                    "output_tokens_details": {"reasoning_tokens": 2},
                },
            },
        },
    ]
)
GEMINI_CHUNKS = [
    {"candidates": [], "usageMetadata": {"promptTokenCount": 13, "candidatesTokenCount": 1}},
    {
        "candidates": [],
        "modelVersion": "gemini-x",
        "usageMetadata": {"promptTokenCount": 13, "candidatesTokenCount": 7, "cachedContentTokenCount": 3},
    },
]


@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
@pytest.mark.parametrize(
    ("name", "payload", "expected"),
    [
        ("anthropic", ANTHROPIC, (Usage(10, 7, 3, 4), "claude-x")),
        ("openai", OPENAI, (Usage(10, 7, 3, reasoning_tokens=2), "gpt-x")),
        (
            "gemini",
            "".join(f"data: {json.dumps(c)}\r\n\r\n" for c in GEMINI_CHUNKS).encode(),
            (Usage(10, 7, 3), "gemini-x"),
        ),
    ],
)
def test_usage_is_read_from_a_stream_split_anywhere(
    name: str, payload: bytes, expected: tuple[Usage, str], size: int
) -> None:
    reader = formats()[name].reader(True)
    for i in range(0, len(payload), size):
        reader.feed(payload[i : i + size])
    assert reader.result() == expected


def test_usage_is_read_from_a_whole_body_and_a_gemini_json_array() -> None:
    body = {"model": "claude-x", "usage": {"input_tokens": 5, "output_tokens": 2}}
    reader = formats()["anthropic"].reader(False)
    reader.feed(json.dumps(body).encode())
    assert reader.result() == (Usage(5, 2), "claude-x")
    gemini = formats()["gemini"].reader(True)
    gemini.feed(json.dumps(GEMINI_CHUNKS).encode())  # a stream without alt=sse
    assert gemini.result() == (Usage(10, 7, 3), "gemini-x")


def test_a_stream_without_usage_or_cut_before_it_reads_none_or_what_it_saw() -> None:
    reader = formats()["openai"].reader(True)
    reader.feed(OPENAI[:40])
    assert reader.result() == (None, None)
    cut = formats()["anthropic"].reader(True)
    cut.feed(ANTHROPIC[: ANTHROPIC.index(b"event: message_delta")])
    assert cut.result() == (Usage(10, 1, 3, 4), "claude-x")  # input known, output as of the cut


def test_models_and_output_caps_per_format() -> None:
    f = formats()
    assert f["anthropic"].model("/v1/messages", {"model": "m"}) == "m"
    assert f["anthropic"].max_tokens({"max_tokens": 100}) == 100
    assert f["openai"].max_tokens({"max_output_tokens": 9}) == 9
    assert f["openai"].max_tokens({}) is None
    path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    assert f["gemini"].model(path, {}) == "gemini-2.5-flash"
    assert f["gemini"].max_tokens({"generationConfig": {"maxOutputTokens": 5}}) == 5
    assert f["gemini"].metered(path) and not f["gemini"].metered("/v1beta/models")
    assert not f["anthropic"].metered("/v1/messages/count_tokens")


def test_paths_and_tokens() -> None:
    assert auth.split_path("/anthropic/v1/messages") == (None, "anthropic", "/v1/messages")
    assert auth.split_path("/t/lt_abc/gemini/v1beta/x") == ("lt_abc", "gemini", "/v1beta/x")
    assert auth.token_from({"x-api-key": "lt_1"}, {}) == "lt_1"
    assert auth.token_from({"authorization": "Bearer lt_2"}, {}) == "lt_2"
    assert auth.token_from({}, {"key": "lt_3"}) == "lt_3"
    # A real key (a subscription's OAuth bearer, a provider key) is never taken for a run's token.
    assert auth.token_from({"authorization": "Bearer sk-ant-oauth", "x-api-key": "sk-real"}, {}) is None


def test_the_loop_rule_counts_identical_bodies_in_a_row_only() -> None:
    policy = RunPolicy(rate_per_minute=100, loop_repeats=3)
    assert [policy.loops(b) for b in (b"a", b"a", b"b", b"a", b"a")] == [False] * 5
    assert policy.loops(b"a") is True
    off = RunPolicy(rate_per_minute=100, loop_repeats=0)
    assert not any(off.loops(b"a") for _ in range(10))


def test_the_rate_limit_is_per_minute() -> None:
    policy = RunPolicy(rate_per_minute=2, loop_repeats=0)
    assert [policy.rate_exceeded(now) for now in (0.0, 1.0, 2.0)] == [False, False, True]
    assert policy.rate_exceeded(61.0) is False  # the first call left the window


def test_in_flight_worst_cases_count_against_every_capped_scope() -> None:
    company, task = uuid4(), uuid4()
    rows = [
        {
            "scope": "company",
            "scope_id": company,
            "cap": Decimal(10),
            "spent": Decimal(1),
            "reserved": Decimal(5),
            "envelope": Decimal(2),
        },
        {
            "scope": "task",
            "scope_id": task,
            "cap": Decimal(3),
            "spent": Decimal(1),
            "reserved": Decimal(2),
            "envelope": Decimal(2),
        },
        {
            "scope": "team",
            "scope_id": uuid4(),
            "cap": None,
            "spent": Decimal(0),
            "reserved": Decimal(0),
            "envelope": Decimal(2),
        },
    ]
    flight = InFlight()
    scopes, refused = flight.admit(rows, Decimal("1.5"))
    assert refused is None and scopes == [company, task]
    _, refused = flight.admit(rows, Decimal("1"))  # the task: 1 spent + 1.5 in flight + 1 > 3
    assert refused is not None and refused.scope == "task" and refused.committed == Decimal("1.5")
    flight.release(scopes, Decimal("1.5"))
    assert flight.admit(rows, Decimal("2"))[1] is None
    # The company counts the others' reservations (5 - this run's envelope 2): 1 + 3 + 2 + 4.5 > 10.
    refused = flight.admit(rows, Decimal("4.5"))[1]
    assert refused is not None and refused.scope == "company"
