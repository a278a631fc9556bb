"""``create_subtask``: a running task queues a child task for its agent's team or a named agent.

The child lives inside its parent's budget (docs/budgets.md, the task scope): when the parent task has a
budget, the child's may not exceed what the parent has left, which is its cap less what it has spent
and less the budgets already given to its other children (a child's budget is promised whether or not
it has been spent yet, so two children cannot both be handed the same dollars). A child without a
budget of its own gets all of what is left. When the parent has no budget, the child is bounded by the
team, agent and company budgets at claim time like any task.

The write is fenced like every write of a run: the lease row is locked first (``leases`` lock order),
so a reaper or a second create_subtask of the same run waits, and a zombie creates nothing.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from typing import Any, LiteralString

from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import leases, tasks
from company_agents.agent_tools import calls
from company_agents.agent_tools.fencing import IMPLIED, Fence, ToolEnv, fenced
from company_agents.agents import get_agent
from company_agents.db import driver
from company_agents.errors import InvalidInput
from company_agents.task_states import ACTIVE_SQL

BUDGET_QUANTUM = Decimal("0.0001")  # tasks.budget_usd is NUMERIC(14, 4)

# Two statements, in this order, in one transaction. The first locks the run's lease row (lock order:
# the lease, then the task, which is only read): two create_subtask calls of one run queue here. The
# second reads the parent's budget and its children's in a fresh snapshot (READ COMMITTED), so it sees
# a child that the call before it committed while this one waited; in one statement the snapshot
# would be older than the lock, and both calls would promise the same dollars.
LOCK_LEASE_SQL: LiteralString = f"""
SELECT l.task_id
FROM leases l
JOIN tasks t ON t.id = l.task_id AND t.fencing_token = %(fencing_token)s AND t.status IN {ACTIVE_SQL}
WHERE l.task_id = %(task_id)s AND l.fencing_token = %(fencing_token)s AND l.token_hash = %(token_hash)s
FOR UPDATE OF l
"""

PARENT_BUDGET_SQL: LiteralString = """
SELECT tb.cap, tb.spent,
       (SELECT coalesce(sum(c.budget_usd), 0) FROM tasks c WHERE c.parent_id = t.id) AS promised
FROM tasks t
JOIN leases l ON l.task_id = t.id
JOIN agents a ON a.id = l.agent_id
CROSS JOIN LATERAL ca_task_budget(t.id, t.budget_usd, a.task_budget_usd) tb
WHERE t.id = %(task_id)s
"""


def child_budget(
    requested: Decimal | None, cap: Decimal | None, spent: Decimal, promised: Decimal
) -> Decimal | None:
    """The child's budget: ``requested`` within what the parent has left (all of it by default).

    Raises:
        InvalidInput: the request exceeds what is left, or nothing is left.
    """
    if cap is None:
        return requested
    left = max(cap - spent - promised, Decimal(0)).quantize(BUDGET_QUANTUM, rounding=ROUND_DOWN)
    if requested is None:
        if left <= 0:
            raise InvalidInput(
                "your task has no budget left to give a sub-task", field="budgetUsd", leftUsd=str(left)
            )
        return left
    if requested > left:
        raise InvalidInput(
            f"budgetUsd: at most {left} (what your task has left)", field="budgetUsd", leftUsd=str(left)
        )
    return requested


async def create_subtask(
    env: ToolEnv, token: str, call: calls.CreateSubtask, fence: Fence = IMPLIED
) -> dict[str, Any]:
    """Queue a child of the run's task, for the run's team or a named agent of the company."""

    async def write(conn: AsyncConnection, ident: leases.RunIdentity, ft: int) -> dict[str, Any]:
        params = {"task_id": ident.task_id, "fencing_token": ft, "token_hash": ident.token_hash}
        if await driver.one(conn, LOCK_LEASE_SQL, params) is None:
            raise leases.stale_error(ident, ft, "create_subtask")
        # Who does it first (a name that is not in the company is not_found), then how much it may spend.
        team = None
        if call.agent is None:
            me = await get_agent(conn, ident.company_id, ident.agent_id)
            if me["team_id"] is None:
                raise InvalidInput("you are in no team: name the agent to do it", field="agent")
            team = str(me["team_id"])
        else:
            await get_agent(conn, ident.company_id, call.agent)
        parent = await driver.one(conn, PARENT_BUDGET_SQL, {"task_id": ident.task_id})
        if parent is None:  # the lease is locked by this transaction: it cannot have gone
            raise leases.stale_error(ident, ft, "create_subtask")
        budget = child_budget(call.budget_usd, parent["cap"], parent["spent"], parent["promised"])
        row = await tasks.create_task(
            conn,
            company=str(ident.company_id),
            title=call.title,
            body=call.body,
            agent=call.agent,
            team=team,
            parent=str(ident.task_id),
            budget_usd=budget,
            priority=call.priority,
            actor=f"agent:{ident.agent_id}",
        )
        return row

    row = await fenced(env, "create_subtask", token, fence, write)
    return {
        "taskId": str(row["id"]),
        "parentTaskId": str(row["parent_id"]),
        "status": row["status"],
        "assignedAgentId": str(row["assigned_agent_id"]) if row["assigned_agent_id"] else None,
        "assignedTeamId": str(row["assigned_team_id"]) if row["assigned_team_id"] else None,
        "budgetUsd": str(row["budget_usd"]) if row["budget_usd"] is not None else None,
    }
