"""Teams and agents: hiring, the reporting tree, pause/resume/retire. Every change is audited."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import audit, ids
from company_agents.adapters.env_policy import refuse_reserved
from company_agents.companies import get_company
from company_agents.db.errors import translate
from company_agents.db.schema import agents, teams
from company_agents.errors import Conflict, InvalidInput, NotFound
from company_agents.identity import rotate_agent_token
from company_agents.ids import resolve_id
from company_agents.memory import seed_memory


async def get_team(conn: AsyncConnection, company_id: UUID, ref: str | UUID) -> dict[str, Any]:
    """A team of the company by name (case-insensitive), id or id prefix."""
    key = await resolve_id(conn, ids.TEAM, ref, company_id=company_id)
    query = select(teams).where(teams.c.company_id == company_id, teams.c.id == key)
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise NotFound(f"no team {ref!s} in this company", team=str(ref))
    return dict(row)


async def get_agent(conn: AsyncConnection, company_id: UUID | None, ref: str | UUID) -> dict[str, Any]:
    """An agent by id or id prefix, or by name (case-insensitive) within a company."""
    key = await resolve_id(conn, ids.AGENT, ref, company_id=company_id)
    # The team's name rides along, as in list_agents, so one agent and a list show the same object.
    query = (
        select(agents, teams.c.name.label("team_name"))
        .select_from(agents.outerjoin(teams, teams.c.id == agents.c.team_id))
        .where(agents.c.id == key)
    )
    if company_id is not None:
        query = query.where(agents.c.company_id == company_id)
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise NotFound(f"no agent {ref!s}", agent=str(ref))
    return dict(row)


async def create_team(
    conn: AsyncConnection,
    *,
    company: str,
    name: str,
    budget_usd: Decimal | None = None,
    actor: str = audit.LOCAL_USER,
) -> dict[str, Any]:
    comp = await get_company(conn, company)
    if not name.strip():
        raise InvalidInput("a team needs a name", field="name")
    if budget_usd is not None and budget_usd < 0:
        raise InvalidInput("budget must not be negative", field="budget")
    if budget_usd is not None and comp["budget_usd"] is not None and budget_usd > comp["budget_usd"]:
        raise InvalidInput(
            f"team budget {budget_usd} exceeds the company budget {comp['budget_usd']}", field="budget"
        )
    try:
        async with conn.begin_nested():
            row = (
                (
                    await conn.execute(
                        insert(teams)
                        .values(company_id=comp["id"], name=name.strip(), budget_usd=budget_usd)
                        .returning(teams)
                    )
                )
                .mappings()
                .one()
            )
    except IntegrityError as exc:
        raise translate(exc, name=name.strip()) from exc
    await audit.record(
        conn,
        actor=actor,
        action="team.created",
        subject_type="team",
        subject_id=row["id"],
        company_id=comp["id"],
        payload={"name": row["name"]},
    )
    return dict(row)


async def list_teams(conn: AsyncConnection, *, company: str) -> list[dict[str, Any]]:
    comp = await get_company(conn, company)
    query = select(teams).where(teams.c.company_id == comp["id"]).order_by(teams.c.name)
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def hire_agent(
    conn: AsyncConnection,
    *,
    company: str,
    name: str,
    role: str,
    adapter: str | None,
    team: str | None = None,
    reports_to: str | None = None,
    budget_usd: Decimal | None = None,
    memory: str | None = None,
    max_concurrent_tasks: int = 1,
    adapter_config: dict[str, Any] | None = None,
    approvals: str | None = None,
    model: str | None = None,
    task_budget_usd: Decimal | None = None,
    actor: str = audit.LOCAL_USER,
) -> dict[str, Any]:
    """Hire an agent (status ``idle``). Its budget may not exceed its team's; it reports to an agent of
    the same company, so reporting lines stay a tree (a new agent is always a leaf). ``approvals`` is its
    approval policy (``"spend_over:10,production_writes"``, approvals/policy.py; default: over $10)."""
    comp = await get_company(conn, company)
    if comp["status"] != "active":
        raise Conflict(f"company {comp['slug']} is archived: it cannot hire", company=comp["slug"])
    if not name.strip() or not role.strip():
        raise InvalidInput("an agent needs a name and a role", field="name" if not name.strip() else "role")
    adapter = adapter or comp["default_adapter"]
    if not adapter:
        raise InvalidInput("give --adapter (the company has no default adapter)", field="adapter")
    if max_concurrent_tasks < 1:
        raise InvalidInput("an agent takes at least one task at a time", field="maxConcurrentTasks")
    if refused := refuse_reserved(set((adapter_config or {}).get("env") or {})):
        raise InvalidInput(f"an agent's environment may not set {', '.join(refused)}", field="secretEnv")
    team_row = await get_team(conn, comp["id"], team) if team else None
    if budget_usd is not None:
        if budget_usd < 0:
            raise InvalidInput("budget must not be negative", field="budget")
        if (
            team_row is not None
            and team_row["budget_usd"] is not None
            and budget_usd > team_row["budget_usd"]
        ):
            raise InvalidInput(
                f"agent budget {budget_usd} exceeds team {team_row['name']}'s budget "
                f"{team_row['budget_usd']}",
                field="budget",
            )
        if comp["budget_usd"] is not None and budget_usd > comp["budget_usd"]:
            raise InvalidInput(
                f"agent budget {budget_usd} exceeds the company budget {comp['budget_usd']}", field="budget"
            )
    from company_agents.approvals.policy import Policy

    approval_policy = Policy.parse(approvals).to_json()
    model = model.strip() if model and model.strip() else None
    if task_budget_usd is not None and (not task_budget_usd.is_finite() or task_budget_usd < 0):
        raise InvalidInput("the per-task budget must not be negative", field="taskBudget")
    manager = await get_agent(conn, comp["id"], reports_to) if reports_to else None
    if manager is not None and manager["status"] == "retired":
        raise InvalidInput(
            f"agent {manager['name']} is retired: nobody can report to them", field="reportsTo"
        )
    try:
        async with conn.begin_nested():
            row = (
                (
                    await conn.execute(
                        insert(agents)
                        .values(
                            company_id=comp["id"],
                            team_id=team_row["id"] if team_row else None,
                            name=name.strip(),
                            role=role.strip(),
                            adapter=adapter,
                            adapter_config=adapter_config or {},
                            reports_to=manager["id"] if manager else None,
                            budget_usd=budget_usd,
                            task_budget_usd=task_budget_usd,
                            max_concurrent_tasks=max_concurrent_tasks,
                            approval_policy=approval_policy,
                            model=model,
                        )
                        .returning(agents)
                    )
                )
                .mappings()
                .one()
            )
    except IntegrityError as exc:
        raise translate(exc, name=name) from exc
    agent = {**row, "team_name": team_row["name"] if team_row else None}
    if memory:
        await seed_memory(conn, agent, memory, actor=actor)
    await audit.record(
        conn,
        actor=actor,
        action="agent.hired",
        subject_type="agent",
        subject_id=agent["id"],
        company_id=comp["id"],
        payload={
            "name": agent["name"],
            "role": agent["role"],
            "adapter": adapter,
            "team": team_row["name"] if team_row else None,
            "reportsTo": str(manager["id"]) if manager else None,
            "approvalPolicy": approval_policy,
            "model": model,
        },
    )
    # The identity token is returned once, here; only its hash is kept.
    agent["token"] = await rotate_agent_token(conn, agent, actor=actor)
    return agent


_STATUS_MOVES = {
    "pause": ({"idle", "running"}, "paused", "agent.paused"),
    "resume": ({"paused"}, "idle", "agent.resumed"),
    "retire": ({"idle", "running", "paused"}, "retired", "agent.retired"),
}


async def set_agent_status(
    conn: AsyncConnection, *, company: str, agent: str, move: str, actor: str = audit.LOCAL_USER
) -> dict[str, Any]:
    """Pause, resume or retire. A paused or retired agent takes no new task; a running one finishes."""
    sources, target, action = _STATUS_MOVES[move]
    comp = await get_company(conn, company)
    current = await get_agent(conn, comp["id"], agent)
    if current["status"] not in sources:
        raise Conflict(
            f"agent {current['name']} is {current['status']}: cannot {move}", agent=current["name"]
        )
    values: dict[str, Any] = {"status": target, "updated_at": func.now()}
    if target == "retired":
        values["retired_at"] = func.now()
    row = (
        (
            await conn.execute(
                update(agents)
                .where(and_(agents.c.id == current["id"], agents.c.status == current["status"]))
                .values(**values)
                .returning(agents)
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise Conflict("the agent changed meanwhile; try again", agent=current["name"])
    await audit.record(
        conn,
        actor=actor,
        action=action,
        subject_type="agent",
        subject_id=current["id"],
        company_id=comp["id"],
        payload={"from": current["status"], "to": target},
    )
    return {**row, "team_name": current["team_name"]}


async def list_agents(
    conn: AsyncConnection, *, company: str, team: str | None = None, include_retired: bool = False
) -> list[dict[str, Any]]:
    comp = await get_company(conn, company)
    query = (
        select(agents, teams.c.name.label("team_name"))
        .select_from(agents.outerjoin(teams, teams.c.id == agents.c.team_id))
        .where(agents.c.company_id == comp["id"])
        .order_by(agents.c.created_at)
    )
    if team:
        query = query.where(agents.c.team_id == (await get_team(conn, comp["id"], team))["id"])
    if not include_retired:
        query = query.where(agents.c.status != "retired")
    return [dict(r) for r in (await conn.execute(query)).mappings()]


# What a person may change on a hired agent; its adapter, secrets and manager stay as hired (a change of
# manager would have to keep the reporting lines a tree, and an adapter change belongs with its config).
AGENT_PATCHABLE = (
    "name",
    "role",
    "team",
    "budget_usd",
    "task_budget_usd",
    "max_concurrent_tasks",
    "model",
    "approvals",
)
_REQUIRED = ("name", "role", "max_concurrent_tasks")


async def update_agent(
    conn: AsyncConnection,
    *,
    company: str,
    agent: str,
    changes: dict[str, Any],
    actor: str = audit.LOCAL_USER,
) -> dict[str, Any]:
    """Change the given fields (``AGENT_PATCHABLE``) of an agent that is not retired; ``team``,
    ``budget_usd``, ``task_budget_usd``, ``model`` and ``approvals`` may be None (no team, no budget, no
    model, the default policy). The budget rules of a hire hold: at most the (new) team's and the
    company's budget. A running attempt keeps what it started with; its next claim sees the change.
    The audit event lists each changed field with its old and new value."""
    comp = await get_company(conn, company)
    current = await get_agent(conn, comp["id"], agent)
    if current["status"] == "retired":
        raise Conflict(f"agent {current['name']} is retired: it cannot change", agent=current["name"])
    given = {k: v for k, v in changes.items() if k in AGENT_PATCHABLE}
    for key in _REQUIRED:
        if key in given and (given[key] is None or (isinstance(given[key], str) and not given[key].strip())):
            raise InvalidInput(f"an agent's {key} cannot be empty", field=key)
    values: dict[str, Any] = {}
    if "name" in given:
        values["name"] = str(given["name"]).strip()
    if "role" in given:
        values["role"] = str(given["role"]).strip()
    if "max_concurrent_tasks" in given:
        if int(given["max_concurrent_tasks"]) < 1:
            raise InvalidInput("an agent takes at least one task at a time", field="maxConcurrentTasks")
        values["max_concurrent_tasks"] = int(given["max_concurrent_tasks"])
    if "model" in given:
        model = given["model"]
        values["model"] = model.strip() if model and model.strip() else None
    if "approvals" in given:
        from company_agents.approvals.policy import Policy

        values["approval_policy"] = Policy.parse(given["approvals"]).to_json()
    team_row = await get_team(conn, comp["id"], current["team_id"]) if current["team_id"] else None
    if "team" in given:
        team_row = await get_team(conn, comp["id"], given["team"]) if given["team"] else None
        values["team_id"] = team_row["id"] if team_row else None
    if "task_budget_usd" in given:
        task_budget = given["task_budget_usd"]
        if task_budget is not None and (not task_budget.is_finite() or task_budget < 0):
            raise InvalidInput("the per-task budget must not be negative", field="taskBudget")
        values["task_budget_usd"] = task_budget
    budget = given["budget_usd"] if "budget_usd" in given else current["budget_usd"]
    if "budget_usd" in given or "team" in given:
        _check_budget(budget, team_row, comp)
        if "budget_usd" in given:
            values["budget_usd"] = budget
    changed = {k: v for k, v in values.items() if current.get(k) != v}
    if not changed:
        return current
    try:
        async with conn.begin_nested():
            row = (
                (
                    await conn.execute(
                        update(agents)
                        .where(agents.c.id == current["id"], agents.c.status != "retired")
                        .values(**changed, updated_at=func.now())
                        .returning(agents)
                    )
                )
                .mappings()
                .first()
            )
    except IntegrityError as exc:
        raise translate(exc, name=values.get("name", current["name"])) from exc
    if row is None:
        raise Conflict("the agent changed meanwhile; try again", agent=current["name"])

    def plain(value: Any) -> Any:
        return str(value) if isinstance(value, Decimal | UUID) else value

    await audit.record(
        conn,
        actor=actor,
        action="agent.updated",
        subject_type="agent",
        subject_id=current["id"],
        company_id=comp["id"],
        payload={k: {"from": plain(current.get(k)), "to": plain(v)} for k, v in sorted(changed.items())},
    )
    team_name = team_row["name"] if team_row else None
    return {**row, "team_name": team_name}


def _check_budget(budget: Decimal | None, team: dict[str, Any] | None, comp: dict[str, Any]) -> None:
    if budget is None:
        return
    if not budget.is_finite() or budget < 0:
        raise InvalidInput("budget must not be negative", field="budget")
    if team is not None and team["budget_usd"] is not None and budget > team["budget_usd"]:
        raise InvalidInput(
            f"agent budget {budget} exceeds team {team['name']}'s budget {team['budget_usd']}",
            field="budget",
        )
    if comp["budget_usd"] is not None and budget > comp["budget_usd"]:
        raise InvalidInput(
            f"agent budget {budget} exceeds the company budget {comp['budget_usd']}", field="budget"
        )
