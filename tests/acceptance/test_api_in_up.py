"""The whole product over HTTP with one API token, against a real `up` in embedded mode (the default):
create a company, hire an agent, create a task, watch it on the event stream until it reaches review,
approve it, and see the approval arrive on the same stream. Only the token is made with the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from company_agents.demo import ADAPTER_NAME, example_adapter
from tests.acceptance.orchestrator import Orchestrator, cli

pytestmark = pytest.mark.slow  # a real `up`


@pytest.fixture
def orchestrator(cli_env: dict[str, str], home: Path) -> Iterator[Orchestrator]:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.json").write_text(json.dumps({"adapters": {ADAPTER_NAME: example_adapter()}}))
    env = {**cli_env, "COMPANY_AGENTS_ISOLATION": "none", "COMPANY_AGENTS_SCHEDULER_POLL_SECONDS": "0.2"}
    orch = Orchestrator(env)
    try:
        yield orch
    finally:
        orch.terminate()


def _events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """The stream's events as they arrive (keep-alive comments skipped), with their SSE ``id:``."""
    event_id = None
    for line in response.iter_lines():
        if line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("data:"):
            event = json.loads(line[5:])
            assert event["id"] == event_id, "each event carries the id a reconnect resumes from"
            yield event


def test_a_user_runs_a_company_over_http_with_a_token(orchestrator: Orchestrator) -> None:
    made = cli(orchestrator.env, "token", "create", "--name", "ops", "--scopes", "read,write")
    token = made["token"]
    assert token.startswith("ca_dev_")
    auth = {"Authorization": f"Bearer {token}"}
    base = f"http://127.0.0.1:{orchestrator.api_port}/v1"
    with httpx.Client(base_url=base, headers=auth, timeout=60) as api:
        assert api.get("/whoami").json()["data"]["scopes"] == ["read", "write"]
        created = api.post("/companies", json={"name": "Acme", "teams": ["Eng"]})
        assert created.status_code == 201, created.text
        company = created.json()["data"]
        hired = api.post(
            "/companies/acme/agents",
            json={"name": "ada", "role": "Technical writer", "adapter": ADAPTER_NAME, "team": "Eng"},
        )
        assert hired.status_code == 201, hired.text
        assert hired.json()["data"]["team"] == "Eng"

        with (
            httpx.Client(base_url=base, headers=auth, timeout=60) as watcher,
            watcher.stream("GET", "/companies/acme/events") as stream,
        ):
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            task = api.post(
                "/companies/acme/tasks",
                json={"title": "Write the notes", "body": "file: notes.md\nHello over HTTP.", "team": "Eng"},
            )
            assert task.status_code == 201, task.text
            task_id = task.json()["data"]["id"]

            seen: list[str] = []
            events = _events(stream)
            for event in events:
                assert event["companyId"] == company["id"]
                if event["subject"]["id"] != task_id:
                    continue
                seen.append(event["type"])
                if api.get(f"/tasks/{task_id}").json()["data"]["status"] == "review":
                    break
            assert seen[0] == "task.created" and "run.started" in seen and "run.finished" in seen, seen

            approved = api.post(f"/tasks/{task_id}/approve")
            assert approved.status_code == 200, approved.text
            assert approved.json()["data"]["status"] == "done"
            for event in events:
                if event["subject"]["id"] == task_id:
                    assert (event["type"], event["action"]) == ("task.updated", "task.approved"), event
                    assert event["actor"] == f"user:token:{made['id']}", "the audit names the token"
                    break

        runs = api.get(f"/tasks/{task_id}/runs").json()["data"]
        assert [r["status"] for r in runs] == ["succeeded"]
        log = api.get(f"/runs/{runs[0]['id']}/log")
        assert log.status_code == 200
