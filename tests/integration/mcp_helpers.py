"""An MCP client of the real tool endpoint, as the agent CLIs use it: the SDK's own streamable-HTTP client
with the run's bearer header."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

# Both handshakes the CLIs use: Codex and Gemini `initialize` (legacy), Claude Code `server/discover`.
MODES: tuple[Literal["legacy", "auto"], ...] = ("legacy", "auto")


@asynccontextmanager
async def mcp_client(base_url: str, token: str | None, mode: str = "legacy") -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60)) as http:
        transport = streamable_http_client(f"{base_url}/mcp", http_client=http)
        async with Client(transport, mode=mode) as client:
            yield client


def payload(result: CallToolResult) -> dict[str, Any]:
    """The tool's JSON answer; the text block and the structured content say the same."""
    assert len(result.content) == 1 and result.content[0].type == "text"
    text = json.loads(result.content[0].text)
    assert text == result.structured_content
    assert isinstance(text, dict)
    return text


def error_code(result: CallToolResult) -> str:
    assert result.is_error, result
    code = payload(result)["error"]["code"]
    assert isinstance(code, str)
    return code
