"""Events inside a real `company-agents up`: a task shows on the SSE stream and reaches a webhook
receiver signed, and `up` still stops promptly while a stream is open."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from company_agents import api_tokens
from company_agents.db.database import sqlalchemy_url
from tests.acceptance.orchestrator import Orchestrator, add_task, cli, wait_for
from tests.conftest import PgServer

pytestmark = pytest.mark.slow  # a real `up`


@pytest.fixture
def env(cli_env: dict[str, str], external_pg: PgServer) -> dict[str, str]:
    return {**cli_env, "DATABASE_URL": external_pg.create_database(), "COMPANY_AGENTS_ISOLATION": "none"}


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    got: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            got.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    server.shutdown()
    server.server_close()


def _token(url: str) -> str:
    async def make() -> str:
        engine = create_async_engine(sqlalchemy_url(url))
        async with engine.begin() as conn:
            _, token = await api_tokens.create_token(conn, name="sse", scopes=["read"])
        await engine.dispose()
        return token

    return asyncio.run(make())


def test_a_task_reaches_the_stream_and_a_signed_webhook_inside_up(
    env: dict[str, str], receiver: tuple[str, list[tuple[dict[str, str], bytes]]]
) -> None:
    url, got = receiver
    cli(env, "new", "--name", "Acme", "--teams", "Eng")
    hook = cli(env, "webhook", "add", "--company", "acme", "--url", url, "--events", "task.*")
    token = _token(env["DATABASE_URL"])
    orch = Orchestrator(env)
    stopped = False
    try:
        base = f"http://127.0.0.1:{orch.api_port}"
        with (
            httpx.Client(timeout=60) as client,
            client.stream(
                "GET", f"{base}/v1/companies/acme/events", headers={"Authorization": f"Bearer {token}"}
            ) as response,
        ):
            assert response.status_code == 200
            task_id = add_task(env, "complete")
            event: dict[str, Any] | None = None
            for line in response.iter_lines():
                if line.startswith("data:"):
                    event = json.loads(line[5:])
                    if event["type"] == "task.created":
                        break
            assert event is not None and event["subject"]["id"] == task_id
            wait_for(lambda: len(got) >= 1, what="the webhook delivery")
            # `up` stops while this stream is still open.
            orch.terminate(timeout=60)
            stopped = True
    finally:
        if not stopped:
            orch.terminate()
    headers, body = got[0]
    key = base64.b64decode(hook["secret"].removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    assert (
        headers["webhook-signature"]
        == "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    )
    assert json.loads(body)["data"]["subject"]["id"] == task_id
