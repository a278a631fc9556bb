"""The agent CLIs' stream parsers: usage becomes cost entries exactly once, results are classified from
the right field, a failed MCP connection is a failure. The Claude transcript is a real one (Claude Code
2.1.332 against tests/fakes/model_server.py: two requests, a Bash call between them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from company_agents.adapters.clis.base import CliEvent
from company_agents.adapters.clis.claude_code import ClaudeStream
from company_agents.adapters.clis.codex import CodexStream
from company_agents.adapters.clis.gemini_cli import GeminiStream
from company_agents.costs.ledger import NewCost, Usage

TRANSCRIPT = Path(__file__).parent / "transcripts" / "claude_code_two_requests.jsonl"


def lines() -> list[dict[str, Any]]:
    return [json.loads(line) for line in TRANSCRIPT.read_text().splitlines() if line.strip()]


def feed_all(parser: Any, events: list[dict[str, Any]], *, end: bool = True) -> list[CliEvent]:
    out: list[CliEvent] = []
    for event in events:
        out += parser.feed(event)
    return out + (parser.end() if end else [])


def costs(events: list[CliEvent]) -> list[NewCost]:
    return [e.cost for e in events if e.kind == "cost" and e.cost is not None]


def total(entries: list[NewCost]) -> Usage:
    return Usage(
        input_tokens=sum(c.usage.input_tokens for c in entries),
        output_tokens=sum(c.usage.output_tokens for c in entries),
        cache_read_tokens=sum(c.usage.cache_read_tokens for c in entries),
        cache_write_5m_tokens=sum(c.usage.cache_write_5m_tokens for c in entries),
    )


SCRIPTED = Usage(input_tokens=2200, output_tokens=70, cache_read_tokens=800, cache_write_5m_tokens=200)


def test_claude_usage_is_one_entry_per_request_and_the_totals_match_the_result() -> None:
    events = feed_all(ClaudeStream(default_model="claude-sonnet-4-5"), lines())
    entries = costs(events)
    assert len(entries) == 2
    assert [c.usage for c in entries] == [
        Usage(input_tokens=1000, output_tokens=50, cache_read_tokens=300, cache_write_5m_tokens=200),
        Usage(input_tokens=1200, output_tokens=20, cache_read_tokens=500),
    ]
    assert total(entries) == SCRIPTED
    assert {c.model for c in entries} == {"claude-sonnet-4-5"}
    assert len({c.idempotency_key for c in entries}) == 2
    # Claude's own price rides along with the last entry, for the cross-check against ours.
    assert entries[-1].details["cliTotalCostUsd"].startswith("0.00863999")
    assert [e.ok for e in events if e.kind == "result"] == [True]
    assert [e.name for e in events if e.kind == "tool_call"] == ["Bash"]


def test_a_replayed_claude_stream_produces_the_same_keys() -> None:
    first = costs(feed_all(ClaudeStream(default_model="m"), lines()))
    again = costs(feed_all(ClaudeStream(default_model="m"), lines() + lines()))
    assert {c.idempotency_key for c in again} == {c.idempotency_key for c in first}


def test_claude_stream_cut_before_its_result_keeps_every_request_it_saw() -> None:
    events = [e for e in lines() if e["type"] != "result"]
    entries = costs(feed_all(ClaudeStream(default_model="m"), events))
    assert total(entries) == SCRIPTED


def test_claude_without_partial_messages_settles_on_the_result_totals() -> None:
    # The assistant snapshots say output_tokens 1; the result's totals make up the difference, once.
    events = [e for e in lines() if e["type"] != "stream_event"]
    entries = costs(feed_all(ClaudeStream(default_model="m"), events))
    assert total(entries) == SCRIPTED
    assert len(entries) == 2


def test_claude_mcp_server_not_connected_is_a_failure() -> None:
    init = {
        "type": "system",
        "subtype": "init",
        "session_id": "s",
        "mcp_servers": [{"name": "ca", "status": "failed"}],
    }
    assert [e.kind for e in ClaudeStream(default_model="m").feed(init)] == ["session", "mcp_failed"]
    absent = {**init, "mcp_servers": []}
    assert "mcp_failed" in [e.kind for e in ClaudeStream(default_model="m").feed(absent)]
    ok = {**init, "mcp_servers": [{"name": "ca", "status": "connected"}]}
    assert [e.kind for e in ClaudeStream(default_model="m").feed(ok)] == ["session"]


def test_claude_api_error_is_classified_by_is_error_not_subtype() -> None:
    result = {
        "type": "result",
        "subtype": "success",  # sic: Claude Code says success for an API error
        "is_error": True,
        "result": "API Error: 500 fake injected error",
        "api_error_status": 500,
        "total_cost_usd": 0,
        "modelUsage": {},
    }
    (event,) = ClaudeStream(default_model="m").feed(result)
    assert event.kind == "result" and not event.ok
    assert "500" in event.reason and "API Error" in event.reason


def test_claude_subscription_login_is_imputed() -> None:
    stream = ClaudeStream(default_model="m")
    events = lines()
    events[0] = {**events[0], "apiKeySource": "none"}
    assert {c.billing for c in costs(feed_all(stream, events))} == {"subscription"}


CODEX: list[dict[str, Any]] = [
    {"type": "thread.started", "thread_id": "01a2"},
    {"type": "turn.started"},
    {
        "type": "item.started",
        "item": {"id": "item_0", "type": "mcp_tool_call", "server": "ca", "tool": "mark_complete"},
    },
    {
        "type": "item.completed",
        "item": {"id": "item_0", "type": "mcp_tool_call", "server": "ca", "tool": "mark_complete"},
    },
    {"type": "item.completed", "item": {"id": "item_1", "type": "agent_message", "text": "FINAL: done."}},
    {
        "type": "turn.completed",
        "usage": {
            "input_tokens": 3000,
            "cached_input_tokens": 800,
            "cache_write_input_tokens": 0,
            "output_tokens": 70,
            "reasoning_output_tokens": 14,
        },
    },
]


def test_codex_turn_usage_counts_cached_input_once() -> None:
    events = feed_all(CodexStream(model="gpt-5.5"), CODEX)
    (entry,) = costs(events)
    assert entry.usage == Usage(
        input_tokens=2200, output_tokens=70, cache_read_tokens=800, reasoning_tokens=14
    )
    assert entry.model == "gpt-5.5" and entry.idempotency_key == "codex:01a2:turn:1"
    assert [e.name for e in events if e.kind == "tool_call"] == ["ca.mark_complete"]
    (result,) = [e for e in events if e.kind == "result"]
    assert result.ok and result.text == "FINAL: done."


def test_codex_failed_turn_is_a_failure_and_a_warning_item_is_not() -> None:
    events = feed_all(
        CodexStream(model="m"),
        [
            {"type": "thread.started", "thread_id": "t"},
            {"type": "turn.started"},
            {
                "type": "item.completed",
                "item": {"id": "w", "type": "error", "message": "Model metadata not found"},
            },
            {"type": "error", "message": "unexpected status 401 Unauthorized"},
            {"type": "turn.failed", "error": {"message": "unexpected status 401 Unauthorized"}},
        ],
    )
    (result,) = [e for e in events if e.kind == "result"]
    assert not result.ok and "401" in result.reason


GEMINI_RESULT: dict[str, Any] = {
    "type": "result",
    "status": "success",
    "stats": {
        "total_tokens": 3070,
        "input_tokens": 3000,
        "output_tokens": 70,
        "cached": 800,
        "input": 2200,
        "tool_calls": 1,
        "models": {
            "gemini-2.5-flash": {"input_tokens": 3000, "output_tokens": 70, "cached": 800, "input": 2200}
        },
    },
}


def test_gemini_result_stats_become_one_entry_per_model() -> None:
    stream = GeminiStream(model="gemini-2.5-flash")
    events = feed_all(
        stream,
        [
            {"type": "init", "session_id": "g1", "model": "gemini-2.5-flash"},
            {"type": "tool_use", "tool_name": "mcp_ca_mark_complete", "tool_id": "x_0", "parameters": {}},
            {"type": "tool_use", "tool_name": "mcp_ca_mark_complete", "tool_id": "x_0", "parameters": {}},
            {"type": "message", "role": "assistant", "content": "FINAL", "delta": True},
            GEMINI_RESULT,
        ],
    )
    (entry,) = costs(events)
    assert entry.usage == Usage(input_tokens=2200, output_tokens=70, cache_read_tokens=800)
    assert entry.idempotency_key == "gemini-cli:g1:result:gemini-2.5-flash"
    assert [e.kind for e in events].count("tool_call") == 1
    assert [e.ok for e in events if e.kind == "result"] == [True]


def test_gemini_error_result_is_a_failure() -> None:
    error = {
        "type": "result",
        "status": "error",
        "error": {"type": "unknown", "message": "[API Error: 401]"},
        "stats": {"models": {}},
    }
    (event,) = GeminiStream(model="m").feed(error)
    assert not event.ok and "401" in event.reason
