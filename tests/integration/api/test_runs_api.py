"""/v1 runs and the review loop: an attempt's run, checkpoints and log, then reject and approve."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from company_agents import agents, companies, leases, run_logs, tasks
from company_agents.workspaces import run_log_path
from tests.integration.api.helpers import Api, api

__all__ = ["api"]


async def test_run_checkpoints_log_and_review(api: Api) -> None:
    token = await api.token("write")
    async with api.db.engine.begin() as conn:
        await companies.create_company(conn, name="Acme")
        worker = await agents.hire_agent(conn, company="acme", name="ada", role="dev", adapter="process")
        task = await tasks.create_task(conn, company="acme", title="Write", agent="ada")
        (claim,) = await leases.claim(conn, agent_id=worker["id"], holder="t", lease_seconds=60)
        await leases.report_progress(
            conn, claim.identity(), fencing_token=claim.fencing_token, checkpoint={"files_written": ["a.md"]}
        )
        await leases.complete(conn, claim.identity(), fencing_token=claim.fencing_token, output={"ok": True})
    runs = (await api.call("GET", "/v1/companies/acme/runs", token)).json()["data"]
    assert len(runs) == 1 and runs[0]["taskId"] == str(task["id"])
    run_id = runs[0]["id"]
    assert (await api.call("GET", f"/v1/runs/{run_id}", token)).json()["data"] == runs[0]
    checkpoints = (await api.call("GET", f"/v1/runs/{run_id}/checkpoints", token)).json()["data"]
    assert checkpoints[0]["payload"] == {"files_written": ["a.md"]}  # data keys stay as stored
    missing = await api.call("GET", f"/v1/runs/{run_id}/log", token)
    assert missing.status_code == 404
    log = run_log_path(api.settings, runs[0]["id"])
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    Path(log).write_text("hello from the agent\n")
    got = await api.call("GET", f"/v1/runs/{run_id}/log", token)
    assert got.status_code == 200 and got.text == "hello from the agent\n"
    assert got.headers["content-type"].startswith("text/plain")

    review = await api.call("GET", f"/v1/tasks/{task['id']}", token)
    assert review.json()["data"]["status"] == "review"
    no_feedback = await api.call("POST", f"/v1/tasks/{task['id']}/reject", token, json={"feedback": ""})
    assert no_feedback.status_code == 422
    rejected = await api.call(
        "POST", f"/v1/tasks/{task['id']}/reject", token, json={"feedback": "More tests"}
    )
    assert (
        rejected.json()["data"]["status"] == "queued" and rejected.json()["data"]["feedback"] == "More tests"
    )
    async with api.db.engine.begin() as conn:
        (again,) = await leases.claim(conn, agent_id=worker["id"], holder="t", lease_seconds=60)
        await leases.complete(conn, again.identity(), fencing_token=again.fencing_token, output={"ok": 2})
    approved = await api.call("POST", f"/v1/tasks/{task['id']}/approve", token)
    assert approved.json()["data"]["status"] == "done"
    attempts = (await api.call("GET", f"/v1/tasks/{task['id']}/runs", token)).json()["data"]
    assert [r["attempt"] for r in attempts] == [1, 2]


async def test_a_followed_log_streams_what_is_written_until_the_run_ends(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``?follow=true`` is ``run logs -f`` over HTTP: the log so far, then what the agent appends,
    and the response ends once the run has ended (and the file stopped growing)."""
    monkeypatch.setattr(run_logs, "POLL_SECONDS", 0.05)
    token = await api.token("read")
    async with api.db.engine.begin() as conn:
        await companies.create_company(conn, name="Acme")
        worker = await agents.hire_agent(conn, company="acme", name="ada", role="dev", adapter="process")
        await tasks.create_task(conn, company="acme", title="Write", agent="ada")
        (claim,) = await leases.claim(conn, agent_id=worker["id"], holder="t", lease_seconds=60)
    (run,) = (await api.call("GET", "/v1/companies/acme/runs", token)).json()["data"]
    log = Path(run_log_path(api.settings, run["id"]))
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("line 1\n")
    following = asyncio.create_task(api.call("GET", f"/v1/runs/{run['id']}/log?follow=true", token))
    await asyncio.sleep(0.3)
    assert not following.done(), "a running run's log stays open"
    with log.open("a") as fh:
        fh.write("line 2\n")
    await asyncio.sleep(0.2)
    async with api.db.engine.begin() as conn:
        await leases.complete(conn, claim.identity(), fencing_token=claim.fencing_token, output={"ok": True})
    with log.open("a") as fh:  # the adapter's last flush, just after the run ended
        fh.write("line 3\n")
    got = await asyncio.wait_for(following, timeout=10)
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/plain")
    assert got.text == "line 1\nline 2\nline 3\n"
    # A finished run's log with follow answers at once, whole.
    again = await asyncio.wait_for(api.call("GET", f"/v1/runs/{run['id']}/log?follow=true", token), 10)
    assert again.text == "line 1\nline 2\nline 3\n"
