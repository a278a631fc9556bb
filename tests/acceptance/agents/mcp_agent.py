"""A test agent that speaks only MCP: it connects to $CA_MCP_URL with its lease token (as the agent CLIs
do), reports progress and completes through the tools; it never writes an event on stdout.

The task body picks what it does: ``complete`` (progress, then mark_complete with the file it wrote),
``fail`` (mark_failed), ``hold`` (keep an MCP session open, then complete once $GO_FILE exists).
It prints each tool answer on stderr, which the run log keeps.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


async def call(client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    text = result.content[0].text if result.content and result.content[0].type == "text" else "{}"
    print(f"{tool}: {text}", file=sys.stderr, flush=True)
    if result.is_error:
        raise SystemExit(3)
    answer: dict[str, Any] = json.loads(text)
    return answer


async def main() -> None:
    task = json.loads(Path(".company-agents/task.json").read_text())
    mode = str(task["body"]).strip()
    headers = {"Authorization": "Bearer " + os.environ["CA_LEASE_TOKEN"]}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60)) as http,
        Client(streamable_http_client(os.environ["CA_MCP_URL"], http_client=http), mode="legacy") as client,
    ):
        await call(client, "report_progress", {"message": "started", "step": "begin"})
        if mode == "fail":
            await call(client, "mark_failed", {"reason": "scripted failure"})
            return
        if mode == "hold":
            go = Path(os.environ["GO_FILE"])
            while not go.exists():
                await asyncio.sleep(0.05)
        Path("result.txt").write_text("written over MCP\n")
        await call(client, "mark_complete", {"output": {"file": "result.txt"}, "reasoning": "via MCP"})


if __name__ == "__main__":
    asyncio.run(main())
