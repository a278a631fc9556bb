"""Approvals through the real tool endpoint over HTTP: the whole lifecycle, and the refusals.

An agent asks with ``request_approval``; a person answers through ``approvals.store.decide`` (what the
CLI calls). Approved, approved with edits, denied (→ handoff), expired (= denied), a question answered
by asking again; a decision is made once and never after expiry; a waiting call returns when the person
answers; a run that ends while waiting leaves its task blocked, and the answer re-queues it with the
decision in ``task.json``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from company_agents import leases, tasks
from company_agents.adapters.config import AdapterConfig
from company_agents.adapters.runner import AgentRun
from company_agents.approvals import inbox, lifecycle, store
from company_agents.db.database import Database
from company_agents.errors import ApprovalClosed
from company_agents.master_key import MasterKey
from company_agents.runtime.housekeeping import expire_approvals
from company_agents.settings import Settings
from company_agents.workspaces import load_context
from tests.integration.queue_helpers import engine, make_world, serve_tool_endpoint

__all__ = ["engine"]

pytestmark = pytest.mark.slow

PERSON = "user:local"


@pytest.fixture
def tool_url(db_url: str, tmp_path: Path) -> Iterator[str]:
    yield from serve_tool_endpoint(db_url, tmp_path / "home", approval_wait_seconds=60)


def _post(base: str, tool: str, claim: leases.Claim, body: Mapping[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{base}/tools/{tool}",
        headers={"Authorization": f"Bearer {claim.lease_token}"},
        json={"fencingToken": claim.fencing_token, **body},
        timeout=90,
    )


def _ask(base: str, claim: leases.Claim, **body: Any) -> dict[str, Any]:
    fields = {
        "action": "Send the quarterly report to the client",
        "reasoning": "The client asked for it by Friday",
        "cost": {"usd": "12.50", "tokens": 3000},
        "sideEffects": ["an email leaves the company"],
        "ifDenied": "I will leave the report as a draft",
        "waitSeconds": 0,
        **body,
    }
    answer = _post(base, "request_approval", claim, fields)
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()["data"]
    return data


async def _claim(engine: AsyncEngine, *, approvals: str | None = None) -> leases.Claim:
    world = await make_world(engine, agent_names=("ada",), approvals=approvals)
    async with engine.begin() as conn:
        await tasks.create_task(conn, company="acme", title="Quarterly report", agent="ada")
    return await _claim_again(engine, world.agents["ada"]["id"])


async def _claim_again(engine: AsyncEngine, agent_id: UUID) -> leases.Claim:
    async with engine.begin() as conn:
        (claim,) = await leases.claim(conn, agent_id=agent_id, holder="test", lease_seconds=60)
    return claim


async def _decide(engine: AsyncEngine, approval_id: str, **kw: Any) -> dict[str, Any]:
    async with engine.begin() as conn:
        return await store.decide(conn, approval_id, actor=PERSON, **kw)


async def _task(engine: AsyncEngine, task_id: UUID) -> dict[str, Any]:
    async with engine.connect() as conn:
        return await tasks.get_task(conn, task_id)


async def _park(engine: AsyncEngine, claim: leases.Claim) -> dict[str, Any] | None:
    """What the runner does when the agent exits while it waits (adapters/runner.py)."""
    async with engine.begin() as conn:
        return await lifecycle.park_run(
            conn, claim.identity(), fencing_token=claim.fencing_token, exit_code=0
        )


async def _actions(engine: AsyncEngine, prefix: str) -> list[str]:
    async with engine.connect() as conn:
        query = text("SELECT action FROM audit_events WHERE action LIKE :p ORDER BY id")
        return [r[0] for r in await conn.execute(query, {"p": f"{prefix}%"})]


async def test_one_pending_per_task_and_action_then_approved(engine: AsyncEngine, tool_url: str) -> None:
    claim = await _claim(engine)
    first = _ask(tool_url, claim)
    again = _ask(tool_url, claim)
    assert (
        first["status"] == "pending" and first["created"] and first["cost"] == {"usd": "12.5", "tokens": 3000}
    )
    assert again["id"] == first["id"] and not again["created"]
    other = _ask(tool_url, claim, action="Book a meeting room")
    assert other["id"] != first["id"]
    await _decide(engine, first["id"], status="approved")
    standing = _ask(tool_url, claim)
    assert (
        standing["id"] == first["id"] and standing["status"] == "approved" and standing["taskStatus"] is None
    )
    assert (await _task(engine, claim.task_id))["status"] == "assigned"
    assert await _actions(engine, "approval.") == ["approval.requested"] * 2 + ["approval.decided"]


async def test_the_waiting_call_returns_when_the_person_answers_with_edits(
    engine: AsyncEngine, tool_url: str
) -> None:
    claim = await _claim(engine)
    waiting = asyncio.create_task(asyncio.to_thread(_ask, tool_url, claim, waitSeconds=60))
    while True:  # the call has created its approval and is waiting on it
        async with engine.connect() as conn:
            pending = await store.list_approvals(conn, company_id=claim.company_id, status=["pending"])
        if pending:
            break
        await asyncio.sleep(0.05)
    assert not waiting.done()
    await _decide(engine, str(pending[0]["id"]), status="approved_with_edits", edits={"cost.usd": 30})
    answer = await waiting
    assert answer["status"] == "approved_with_edits" and answer["edits"] == {"cost.usd": 30}
    assert answer["decidedBy"] == PERSON
    async with engine.connect() as conn:
        lease = (
            await conn.execute(text("SELECT renewed_at FROM leases WHERE task_id = :t"), {"t": claim.task_id})
        ).one()
    assert lease.renewed_at is not None  # the wait kept the lease renewed


async def test_denied_hands_the_task_to_a_person_and_the_run_is_stale(
    engine: AsyncEngine, tool_url: str
) -> None:
    claim = await _claim(engine)
    asked = _ask(tool_url, claim)
    await _decide(engine, asked["id"], status="denied", reason="Not before the audit")
    answer = _ask(tool_url, claim)
    assert answer["status"] == "denied" and answer["taskStatus"] == "handoff"
    assert answer["decisionReason"] == "Not before the audit"
    task = await _task(engine, claim.task_id)
    assert task["status"] == "handoff" and "Not before the audit" in task["failure_reason"]
    late = _post(tool_url, "report_progress", claim, {"message": "sending anyway"})
    assert late.status_code == 409 and late.json()["error"]["code"] == "stale_fencing_token"


async def test_a_run_that_ends_waiting_blocks_the_task_and_the_answer_requeues_it_into_task_json(
    engine: AsyncEngine, tool_url: str
) -> None:
    claim = await _claim(engine)
    asked = _ask(tool_url, claim)
    assert asked["status"] == "pending"
    parked = await _park(engine, claim)
    assert parked is not None and parked["status"] == "blocked"
    task = await _task(engine, claim.task_id)
    assert (task["status"], task["blocked_reason"]) == ("blocked", "approval")
    async with engine.begin() as conn:
        assert await leases.claim(conn, agent_id=claim.agent_id, holder="t", lease_seconds=60) == []
    await _decide(engine, asked["id"], status="approved_with_edits", edits={"recipients": ["cfo@client"]})
    task = await _task(engine, claim.task_id)
    # Waiting on a person is not a failed attempt.
    assert (task["status"], task["blocked_reason"], task["releases"]) == ("queued", None, 1)
    again = await _claim_again(engine, claim.agent_id)
    async with engine.connect() as conn:
        ctx = await load_context(conn, again)
    (decision,) = ctx.task_json(Path("/w"), tool_url)["approvals"]
    assert decision["status"] == "approved_with_edits" and decision["edits"] == {"recipients": ["cfo@client"]}
    assert (await _actions(engine, "task."))[-3:-1] == ["task.blocked", "task.unblocked"]


async def test_expiry_is_a_denial_and_a_late_decision_is_refused(engine: AsyncEngine, tool_url: str) -> None:
    claim = await _claim(engine)
    asked = _ask(tool_url, claim)
    await _park(engine, claim)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE approvals SET expires_at = now() - interval '1 s' WHERE id = :id"),
            {"id": asked["id"]},
        )
    with pytest.raises(ApprovalClosed, match="expired"):
        await _decide(engine, asked["id"], status="approved")
    async with engine.connect() as conn:
        assert (await store.get_approval(conn, asked["id"]))[
            "status"
        ] == "pending"  # the refusal wrote nothing

    class Db:  # what housekeeping is given: something with an engine
        def __init__(self, eng: AsyncEngine) -> None:
            self.engine = eng

    assert await expire_approvals(Db(engine)) == 1  # type: ignore[arg-type]
    async with engine.connect() as conn:
        row = await store.get_approval(conn, asked["id"])
    assert row["status"] == "expired" and row["decided_by"] == store.EXPIRY_ACTOR
    assert (await _task(engine, claim.task_id))["status"] == "handoff"
    with pytest.raises(ApprovalClosed, match="already expired"):
        await _decide(engine, asked["id"], status="approved")
    assert "approval.expired" in await _actions(engine, "approval.")


async def test_an_expiry_seen_by_the_waiting_call_ends_it_as_denied(
    engine: AsyncEngine, tool_url: str
) -> None:
    claim = await _claim(engine)
    asked = _ask(tool_url, claim)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE approvals SET expires_at = now() - interval '1 s' WHERE id = :id"),
            {"id": asked["id"]},
        )
    answer = _ask(tool_url, claim, waitSeconds=30)  # the same pending approval; its wait sees it expire
    assert answer["id"] == asked["id"] and answer["status"] == "expired" and answer["taskStatus"] == "handoff"


async def test_a_question_is_answered_by_asking_again(engine: AsyncEngine, tool_url: str) -> None:
    claim = await _claim(engine)
    asked = _ask(tool_url, claim)
    await _decide(engine, asked["id"], status="asked_question", comment="Which client is it?")
    with pytest.raises(ApprovalClosed, match="already asked_question"):
        await _decide(engine, asked["id"], status="approved")
    again = _ask(tool_url, claim, reasoning="The client asked for it by Friday. Answer: Globex.")
    assert again["id"] != asked["id"] and again["status"] == "pending" and again["created"]
    async with engine.connect() as conn:
        first = await store.get_approval(conn, asked["id"])
    assert first["status"] == "asked_question"
    assert [c["text"] for c in first["comments"]] == ["Which client is it?"]
    await _decide(engine, again["id"], status="approved")
    assert _ask(tool_url, claim)["status"] == "approved"


async def test_deciding_twice_is_refused(engine: AsyncEngine, tool_url: str) -> None:
    claim = await _claim(engine)
    asked = _ask(tool_url, claim)

    async def one(status: str) -> str:
        try:
            kw: dict[str, Any] = {"reason": "no"} if status == "denied" else {}
            await _decide(engine, asked["id"], status=status, **kw)
        except ApprovalClosed:
            return "refused"
        return status

    outcomes = await asyncio.gather(one("approved"), one("denied"))
    assert sorted(outcomes)[1] == "refused" or sorted(outcomes)[0] == "refused"
    assert outcomes.count("refused") == 1
    assert (await _actions(engine, "approval.decided")) == ["approval.decided"]


async def test_the_policy_and_company_rules_answer_at_once(engine: AsyncEngine, tool_url: str) -> None:
    claim = await _claim(engine, approvals="spend_over:20,production_writes")
    # Declared, not named by the policy, within the threshold: approved by the policy.
    cheap = _ask(tool_url, claim, categories=["external_send"])
    assert cheap["status"] == "approved" and cheap["decidedBy"] == "policy:agent"
    # Over the threshold, or a named category, or no category at all: a person answers.
    assert (
        _ask(tool_url, claim, action="Buy a dataset", cost={"usd": "25"}, categories=["external_send"])[
            "status"
        ]
        == "pending"
    )
    assert (
        _ask(tool_url, claim, action="Deploy", cost={"usd": "0"}, categories=["production_writes"])["status"]
        == "pending"
    )
    async with engine.begin() as conn:
        await store.add_rule(
            conn, company="acme", effect="auto_approve", action_pattern="book *", actor=PERSON
        )
        await store.add_rule(
            conn,
            company="acme",
            effect="auto_deny",
            category="resource_changes",
            reason="freeze",
            actor=PERSON,
        )
    booked = _ask(tool_url, claim, action="Book a meeting room", cost={"usd": "50"})
    assert booked["status"] == "approved" and booked["decidedBy"].startswith("rule:")
    denied = _ask(tool_url, claim, action="Delete the old bucket", categories=["resource_changes"])
    assert denied["status"] == "denied" and denied["decisionReason"] == "freeze"
    assert denied["taskStatus"] == "handoff"


async def test_bad_requests_are_422_and_a_stale_run_creates_nothing(
    engine: AsyncEngine, tool_url: str
) -> None:
    claim = await _claim(engine)
    two_lines = _post(tool_url, "request_approval", claim, {"action": "a\nb"})
    unknown = _post(tool_url, "request_approval", claim, {"action": "a", "categories": ["wishes"]})
    negative = _post(tool_url, "request_approval", claim, {"action": "a", "cost": {"usd": "-1"}})
    assert {two_lines.status_code, unknown.status_code, negative.status_code} == {422}
    stale = httpx.post(
        f"{tool_url}/tools/request_approval",
        headers={"Authorization": f"Bearer {claim.lease_token}"},
        json={"fencingToken": claim.fencing_token + 1, "action": "a"},
        timeout=30,
    )
    assert stale.status_code == 409
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM approvals"))).scalar_one() == 0


AGENT = Path(__file__).parent / "approval_agent.py"


async def _run_agent(db_url: str, home: Path, tool_url: str, claim: leases.Claim) -> str | None:
    settings = Settings(home=home, database_url=db_url, lease_seconds=30, mcp_server_url=tool_url)
    db = Database(settings=settings, url=db_url)
    try:
        run = AgentRun(
            settings,
            db,
            claim,
            AdapterConfig(name="test", type="process", binary=sys.executable, args=[str(AGENT)]),
            asyncio.Event(),
            MasterKey(key=bytes(32), source="test"),
        )
        return (await run.execute()).outcome
    finally:
        await db.dispose()


async def test_a_real_agent_that_exits_waiting_resumes_with_the_edits(
    engine: AsyncEngine, db_url: str, tool_url: str, tmp_path: Path
) -> None:
    claim = await _claim(engine, approvals="external_send")
    assert await _run_agent(db_url, tmp_path / "agent-home", tool_url, claim) == "approval"
    task = await _task(engine, claim.task_id)
    assert (task["status"], task["blocked_reason"]) == ("blocked", "approval")
    async with engine.connect() as conn:
        (run,) = await tasks.task_runs(conn, claim.task_id)
        (asked,) = await store.list_approvals(conn, company_id=claim.company_id, status=["pending"])
    assert (run["status"], run["exit_reason"]) == ("handed_off", "approval")
    await _decide(engine, str(asked["id"]), status="approved_with_edits", edits={"channel": "blog only"})
    again = await _claim_again(engine, claim.agent_id)
    assert await _run_agent(db_url, tmp_path / "agent-home", tool_url, again) == "complete"
    task = await _task(engine, claim.task_id)
    assert task["status"] == "review"
    assert task["output"]["output"]["edits"] == {"channel": "blog only"}


async def test_concurrent_asks_of_one_action_make_one_pending_approval(
    engine: AsyncEngine, tool_url: str
) -> None:
    claim = await _claim(engine)
    answers = await asyncio.gather(*(asyncio.to_thread(_ask, tool_url, claim) for _ in range(6)))
    assert len({a["id"] for a in answers}) == 1 and sum(a["created"] for a in answers) == 1
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM approvals"))).scalar_one() == 1


async def test_a_decision_racing_the_run_ending_never_leaves_the_task_stuck(
    engine: AsyncEngine, tool_url: str
) -> None:
    """Whichever commits first, the task ends where the answer says, never blocked on an answered one."""
    world = await make_world(engine, agent_names=("ada",), max_concurrent_tasks=8)
    agent_id = world.agents["ada"]["id"]
    async with engine.begin() as conn:
        for n in range(8):
            await tasks.create_task(conn, company="acme", title=f"t{n}", agent="ada")
        claims = await leases.claim(conn, agent_id=agent_id, holder="t", lease_seconds=60, limit=8)
    asked = [_ask(tool_url, c) for c in claims]
    await asyncio.gather(
        *(_park(engine, c) for c in claims),
        *(_decide(engine, a["id"], status="approved") for a in asked),
    )
    async with engine.connect() as conn:
        statuses = [(await tasks.get_task(conn, c.task_id))["status"] for c in claims]
    assert statuses == ["queued"] * 8


async def test_a_budget_override_decision_is_applied_by_the_budgets(engine: AsyncEngine) -> None:
    """Deciding a ``budget_override`` through the approvals store raises the cap (a grant for the scope)
    in the same transaction; the running task is the budgets' business, not moved here."""
    claim = await _claim(engine)
    async with engine.begin() as conn:
        team_id = (await conn.execute(text("SELECT id FROM teams WHERE name = 'Engineering'"))).scalar_one()
        details = json.dumps(
            {"scope": "team", "scopeId": str(team_id), "capUsd": "10", "proposedCapUsd": "15"}
        )
        row = (
            await conn.execute(
                text(
                    "INSERT INTO approvals (company_id, task_id, kind, action, details, requested_by,"
                    " expires_at) VALUES (:c, :t, 'budget_override', 'Raise the team budget',"
                    " CAST(:d AS jsonb), 'system:budgets', now() + interval '1 h') RETURNING id"
                ),
                {"c": claim.company_id, "t": claim.task_id, "d": details},
            )
        ).one()
    decided = await _decide(engine, str(row.id), status="approved")
    assert decided["status"] == "approved" and decided["kind"] == "budget_override"
    assert (await _task(engine, claim.task_id))["status"] == "assigned"
    async with engine.connect() as conn:
        grants = (
            await conn.execute(
                text("SELECT scope, scope_id, usd FROM budget_grants WHERE kind = 'override'"),
            )
        ).all()
        actions = (
            await conn.execute(text("SELECT action FROM audit_events WHERE action = 'budget.override'"))
        ).all()
    assert [(g.scope, g.scope_id, g.usd) for g in grants] == [("team", team_id, Decimal("15"))]
    assert len(actions) == 1


async def test_the_inbox_drops_requests_of_a_cancelled_task(engine: AsyncEngine, tool_url: str) -> None:
    claim = await _claim(engine)
    asked = _ask(tool_url, claim)
    async with engine.connect() as conn:
        box = await inbox.inbox(conn, company="acme")
    assert [a["id"] for a in box["approvals"]] == [asked["id"]] and box["total"] == 1
    async with engine.begin() as conn:
        await tasks.cancel_task(conn, str(claim.task_id))
    async with engine.connect() as conn:
        box = await inbox.inbox(conn, company="acme")
    assert box["total"] == 0
