"""`company-agents team …` and `company-agents agent …`."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import agents
from company_agents.cli.context import run_in_transaction
from company_agents.cli.output import print_json, print_table
from company_agents.cli.settings import settings_from
from company_agents.errors import InvalidInput

team_app = typer.Typer(help="Teams: create, list.", no_args_is_help=True)
agent_app = typer.Typer(help="Agents: hire, list, show, pause, resume, retire.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (camelCase).")]
CompanyOpt = Annotated[str, typer.Option("--company", help="Company slug or id.")]


def team_public(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "company_id", "name", "manager_agent_id", "budget_usd", "created_at")
    return {k: row[k] for k in keys}


def agent_public(row: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "id",
        "company_id",
        "team_id",
        "name",
        "role",
        "adapter",
        # Shown as stored: its keys (environment variable names, adapter options) are data.
        "adapter_config",
        "reports_to",
        "status",
        "budget_usd",
        "max_concurrent_tasks",
        "created_at",
        "retired_at",
    )
    out = {k: row[k] for k in keys}
    if "team_name" in row:
        out["team"] = row["team_name"]
    return out


@team_app.command("create")
def team_create(
    ctx: typer.Context,
    company: CompanyOpt,
    name: Annotated[str, typer.Option("--name")],
    budget: Annotated[Decimal | None, typer.Option(help="Team budget in USD.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Create a team."""
    row = run_in_transaction(
        settings_from(ctx),
        lambda conn: agents.create_team(conn, company=company, name=name, budget_usd=budget),
    )
    if json_out:
        print_json(team_public(row))
    else:
        print(f"created team {row['name']} ({row['id']})")


@team_app.command("list")
def team_list(ctx: typer.Context, company: CompanyOpt, json_out: JsonOpt = False) -> None:
    """List a company's teams."""
    rows = run_in_transaction(settings_from(ctx), lambda conn: agents.list_teams(conn, company=company))
    if json_out:
        print_json([team_public(r) for r in rows])
    else:
        print_table("Teams", ["name", "budget", "id"], [[r["name"], r["budget_usd"], r["id"]] for r in rows])


@agent_app.command("hire")
def hire(
    ctx: typer.Context,
    company: CompanyOpt,
    name: Annotated[str, typer.Option("--name")],
    role: Annotated[str, typer.Option("--role", help="What the agent does.")],
    adapter: Annotated[str | None, typer.Option(help="Adapter name (default: the company's).")] = None,
    team: Annotated[str | None, typer.Option(help="Team name or id.")] = None,
    reports_to: Annotated[str | None, typer.Option(help="Manager agent (name or id).")] = None,
    budget: Annotated[Decimal | None, typer.Option(help="Budget in USD; at most the team's.")] = None,
    memory: Annotated[str | None, typer.Option(help="Seed notes: the agent's first memory entry.")] = None,
    max_concurrent_tasks: Annotated[int, typer.Option(help="Tasks held at once.")] = 1,
    secret_env: Annotated[
        list[str] | None,
        typer.Option(
            "--secret-env",
            help="VAR=SECRET: put the company secret SECRET into the agent's environment as VAR at run time.",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Hire an agent into a company (status idle)."""
    env: dict[str, Any] = {}
    for item in secret_env or []:
        var, sep, secret = item.partition("=")
        if not sep or not var or not secret:
            raise InvalidInput(f"--secret-env takes VAR=SECRET_NAME, not {item!r}", field="secretEnv")
        env[var] = {"secret": secret}

    async def work(conn: AsyncConnection) -> dict[str, Any]:
        return await agents.hire_agent(
            conn,
            adapter_config={"env": env} if env else None,
            company=company,
            name=name,
            role=role,
            adapter=adapter,
            team=team,
            reports_to=reports_to,
            budget_usd=budget,
            memory=memory,
            max_concurrent_tasks=max_concurrent_tasks,
        )

    row = run_in_transaction(settings_from(ctx), work)
    if json_out:
        print_json({**agent_public(row), "token": row["token"]})
    else:
        print(f"hired {row['name']} ({row['id']})")
        print(f"identity token (shown once; `agent rotate-token` makes a new one): {row['token']}")


@agent_app.command("list")
def agent_list(
    ctx: typer.Context,
    company: CompanyOpt,
    team: Annotated[str | None, typer.Option(help="Only this team.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include retired agents.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """List a company's agents."""
    rows = run_in_transaction(
        settings_from(ctx),
        lambda conn: agents.list_agents(conn, company=company, team=team, include_retired=all_),
    )
    if json_out:
        print_json([agent_public(r) for r in rows])
        return
    print_table(
        "Agents",
        ["name", "role", "team", "adapter", "status", "budget"],
        [[r["name"], r["role"], r["team_name"], r["adapter"], r["status"], r["budget_usd"]] for r in rows],
    )


@agent_app.command("show")
def agent_show(
    ctx: typer.Context,
    company: CompanyOpt,
    agent: Annotated[str, typer.Argument(help="Agent name or id.")],
    json_out: JsonOpt = False,
) -> None:
    """Show one agent."""

    async def work(conn: AsyncConnection) -> dict[str, Any]:
        from company_agents.companies import get_company

        comp = await get_company(conn, company)
        return await agents.get_agent(conn, comp["id"], agent)

    row = agent_public(run_in_transaction(settings_from(ctx), work))
    if json_out:
        print_json(row)
        return
    for key, value in row.items():
        print(f"{key:<22} {'' if value is None else value}")


def _status_command(move: str, doc: str) -> None:
    def command(
        ctx: typer.Context,
        company: CompanyOpt,
        agent: Annotated[str, typer.Argument(help="Agent name or id.")],
        json_out: JsonOpt = False,
    ) -> None:
        row = run_in_transaction(
            settings_from(ctx),
            lambda conn: agents.set_agent_status(conn, company=company, agent=agent, move=move),
        )
        if json_out:
            print_json(agent_public(row))
        else:
            print(f"{row['name']} is {row['status']}")

    command.__doc__ = doc
    agent_app.command(move)(command)


@agent_app.command("rotate-token")
def rotate_token(
    ctx: typer.Context,
    company: CompanyOpt,
    agent: Annotated[str, typer.Argument(help="Agent name or id.")],
    json_out: JsonOpt = False,
) -> None:
    """Give an agent a new identity token; the old one stops working at once."""

    async def work(conn: AsyncConnection) -> dict[str, Any]:
        from company_agents.companies import get_company
        from company_agents.identity import rotate_agent_token

        comp = await get_company(conn, company)
        row = await agents.get_agent(conn, comp["id"], agent)
        return {"id": row["id"], "name": row["name"], "token": await rotate_agent_token(conn, row)}

    out = run_in_transaction(settings_from(ctx), work)
    if json_out:
        print_json(out)
    else:
        print(f"new identity token for {out['name']} (shown once): {out['token']}")


_status_command("pause", "Pause an agent: it takes no new task; a running one finishes.")
_status_command("resume", "Resume a paused agent.")
_status_command("retire", "Retire an agent for good: it takes no new task; a running one finishes.")
