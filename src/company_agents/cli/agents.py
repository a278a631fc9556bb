"""`company-agents team …` and `company-agents agent …`."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection


from company_agents.cli.details import local_time, print_fields, with_name
from company_agents.cli.help import id_argument, id_help
from company_agents.cli.output import print_json, print_table
from company_agents.cli.settings import settings_from
from company_agents.errors import InvalidInput

team_app = typer.Typer(help="Teams: create, list.", no_args_is_help=True)
agent_app = typer.Typer(help="Agents: hire, list, show, update, pause, resume, retire.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (camelCase).")]
CompanyOpt = Annotated[str, typer.Option("--company", help=id_help("company", slug=True))]


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
        "task_budget_usd",
        "max_concurrent_tasks",
        "model",
        "approval_policy",
        "created_at",
        "retired_at",
    )
    out = {k: row.get(k) for k in keys}
    if "team_name" in row:
        out["team"] = row["team_name"]
    return out


def agent_json(row: dict[str, Any], *, with_token: bool = False) -> Any:
    """``--json`` prints what ``/v1/companies/{company}/agents/{agent}`` answers: the same model."""
    from company_agents.api.schemas.agents import Agent, AgentWithToken

    return (AgentWithToken if with_token else Agent).of(row)


@team_app.command("create")
def team_create(
    ctx: typer.Context,
    company: CompanyOpt,
    name: Annotated[str, typer.Option("--name", help="Team name, unique in the company.")],
    budget: Annotated[Decimal | None, typer.Option(help="Team budget in USD.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Create a team."""
    from company_agents import agents
    from company_agents.cli.context import run_in_transaction

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
    from company_agents import agents
    from company_agents.cli.context import run_read
    from company_agents.ids import short_id

    rows = run_read(settings_from(ctx), lambda conn: agents.list_teams(conn, company=company))
    if json_out:
        print_json([team_public(r) for r in rows])
    else:
        print_table(
            "Teams", ["id", "name", "budget"], [[short_id(r["id"]), r["name"], r["budget_usd"]] for r in rows]
        )


@agent_app.command("hire")
def hire(
    ctx: typer.Context,
    company: CompanyOpt,
    name: Annotated[str, typer.Option("--name", help="Agent name, unique in the company.")],
    role: Annotated[str, typer.Option("--role", help="What the agent does.")],
    adapter: Annotated[str | None, typer.Option(help="Adapter name (default: the company's).")] = None,
    team: Annotated[str | None, typer.Option(help=id_help("team", named=True))] = None,
    reports_to: Annotated[str | None, typer.Option(help=id_help("agent", "Manager", named=True))] = None,
    budget: Annotated[Decimal | None, typer.Option(help="Budget in USD; at most the team's.")] = None,
    task_budget: Annotated[
        Decimal | None,
        typer.Option("--task-budget", help="Budget in USD of each task it runs (unless the task has one)."),
    ] = None,
    memory: Annotated[str | None, typer.Option(help="Seed notes: the agent's first memory entry.")] = None,
    max_concurrent_tasks: Annotated[int, typer.Option(help="Tasks held at once.")] = 1,
    secret_env: Annotated[
        list[str] | None,
        typer.Option(
            "--secret-env",
            help="VAR=SECRET: put the company secret SECRET into the agent's environment as VAR at run time.",
        ),
    ] = None,
    approvals: Annotated[
        str | None,
        typer.Option(
            "--approvals",
            help="Approval policy: spend_over:USD and categories (production_writes, external_send, "
            "resource_changes, safety_bypass, self_escalation, all), comma-separated; "
            "'none' for no spend threshold. Default: spend_over:10.",
        ),
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="The model the agent uses (recorded).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Hire an agent into a company (status idle)."""
    from company_agents import agents
    from company_agents.cli.context import run_in_transaction

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
            task_budget_usd=task_budget,
            memory=memory,
            max_concurrent_tasks=max_concurrent_tasks,
            approvals=approvals,
            model=model,
        )

    settings = settings_from(ctx)
    row = run_in_transaction(settings, work)
    _warn_unknown_adapter(settings.config_path, row["adapter"])
    if json_out:
        print_json(agent_json(row, with_token=True))
    else:
        print(f"hired {row['name']} ({row['id']})")
        print(f"identity token (shown once; `agent rotate-token` makes a new one): {row['token']}")


def _warn_unknown_adapter(config_path: Path, adapter: str) -> None:
    """Hiring does not need the adapter yet, but every run of the agent will: say so now, not at run time."""
    from company_agents.adapters.config import load_adapters
    from company_agents.errors import ConfigError

    try:
        known = load_adapters(config_path)
    except ConfigError:
        return  # `up` reports a broken config.json on its own
    if adapter not in known:
        print(
            f"warning: no adapter {adapter!r} in {config_path} yet: its runs fail until there is one "
            "(docs/agent-protocol.md; `company-agents demo` registers 'example')",
            file=sys.stderr,
        )


@agent_app.command("list")
def agent_list(
    ctx: typer.Context,
    company: CompanyOpt,
    team: Annotated[str | None, typer.Option(help="Only this team.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include retired agents.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """List a company's agents."""
    from company_agents import agents
    from company_agents.cli.context import run_read
    from company_agents.ids import short_id

    rows = run_read(
        settings_from(ctx),
        lambda conn: agents.list_agents(conn, company=company, team=team, include_retired=all_),
    )
    if json_out:
        print_json([agent_json(r) for r in rows])
        return
    print_table(
        "Agents",
        ["id", "name", "role", "team", "adapter", "status", "budget"],
        [
            [
                short_id(r["id"]),
                r["name"],
                r["role"],
                r["team_name"],
                r["adapter"],
                r["status"],
                r["budget_usd"],
            ]
            for r in rows
        ],
    )


@agent_app.command("show")
def agent_show(
    ctx: typer.Context,
    company: CompanyOpt,
    agent: Annotated[str, id_argument("agent", named=True)],
    json_out: JsonOpt = False,
) -> None:
    """Show one agent."""

    from company_agents import agents
    from company_agents.cli.context import run_read

    async def work(conn: AsyncConnection) -> tuple[dict[str, Any], dict[str, str | None]]:
        from company_agents import ids
        from company_agents.companies import get_company

        comp = await get_company(conn, company)
        row = await agents.get_agent(conn, comp["id"], agent)
        names = await ids.labels(
            conn,
            {
                "company": (ids.COMPANY, row["company_id"]),
                "team": (ids.TEAM, row["team_id"]),
                "reports_to": (ids.AGENT, row["reports_to"]),
            },
        )
        return row, names

    row, names = run_read(settings_from(ctx), work)
    if json_out:
        print_json(agent_json(row))
        return
    public = agent_public(row)
    print_fields(
        [
            ("id", public["id"]),
            ("name", public["name"]),
            ("role", public["role"]),
            ("status", public["status"]),
            ("company", with_name(names["company"], public["company_id"])),
            ("team", with_name(names["team"], public["team_id"]) or "none"),
            ("reports to", with_name(names["reports_to"], public["reports_to"]) or "nobody"),
            ("adapter", public["adapter"]),
            ("adapter config", public["adapter_config"] or "none"),
            ("budget", f"${public['budget_usd']}" if public["budget_usd"] is not None else "none"),
            ("tasks at once", public["max_concurrent_tasks"]),
            ("hired", local_time(public["created_at"])),
            ("retired", local_time(public["retired_at"]) or "no"),
        ]
    )


@agent_app.command("update")
def agent_update(
    ctx: typer.Context,
    company: CompanyOpt,
    agent: Annotated[str, id_argument("agent", named=True)],
    name: Annotated[str | None, typer.Option("--name", help="A new name, unique in the company.")] = None,
    role: Annotated[str | None, typer.Option("--role", help="What the agent does.")] = None,
    team: Annotated[str | None, typer.Option(help=id_help("team", "Move to team", named=True))] = None,
    no_team: Annotated[bool, typer.Option("--no-team", help="Take it out of its team.")] = False,
    budget: Annotated[Decimal | None, typer.Option(help="Budget in USD; at most the team's.")] = None,
    no_budget: Annotated[bool, typer.Option("--no-budget", help="Remove its own budget.")] = False,
    task_budget: Annotated[
        Decimal | None, typer.Option("--task-budget", help="Budget in USD of each task it runs.")
    ] = None,
    no_task_budget: Annotated[
        bool, typer.Option("--no-task-budget", help="Remove its per-task budget.")
    ] = False,
    max_concurrent_tasks: Annotated[int | None, typer.Option(help="Tasks held at once.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="The model the agent uses.")] = None,
    approvals: Annotated[
        str | None, typer.Option("--approvals", help="Approval policy, as for `agent hire`.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Change an agent that is not retired (as PATCH /v1/companies/{company}/agents/{agent} does)."""
    from company_agents import agents
    from company_agents.cli.context import run_in_transaction

    for given, cleared, option in (
        (team, no_team, "team"),
        (budget, no_budget, "budget"),
        (task_budget, no_task_budget, "task-budget"),
    ):
        if given is not None and cleared:
            raise InvalidInput(f"give --{option} or --no-{option}, not both", field=option)
    changes: dict[str, Any] = {
        k: v
        for k, v in {
            "name": name,
            "role": role,
            "team": team,
            "budget_usd": budget,
            "task_budget_usd": task_budget,
            "max_concurrent_tasks": max_concurrent_tasks,
            "model": model,
            "approvals": approvals,
        }.items()
        if v is not None
    }
    for cleared, key in ((no_team, "team"), (no_budget, "budget_usd"), (no_task_budget, "task_budget_usd")):
        if cleared:
            changes[key] = None
    row = run_in_transaction(
        settings_from(ctx),
        lambda conn: agents.update_agent(conn, company=company, agent=agent, changes=changes),
    )
    if json_out:
        print_json(agent_json(row))
    else:
        print(f"updated {row['name']} ({row['id']})")


def _status_command(move: str, doc: str) -> None:
    def command(
        ctx: typer.Context,
        company: CompanyOpt,
        agent: Annotated[str, id_argument("agent", named=True)],
        json_out: JsonOpt = False,
    ) -> None:
        from company_agents import agents
        from company_agents.cli.context import run_in_transaction

        row = run_in_transaction(
            settings_from(ctx),
            lambda conn: agents.set_agent_status(conn, company=company, agent=agent, move=move),
        )
        if json_out:
            print_json(agent_json(row))
        else:
            print(f"{row['name']} is {row['status']}")

    command.__doc__ = doc
    agent_app.command(move)(command)


@agent_app.command("rotate-token")
def rotate_token(
    ctx: typer.Context,
    company: CompanyOpt,
    agent: Annotated[str, id_argument("agent", named=True)],
    json_out: JsonOpt = False,
) -> None:
    """Give an agent a new identity token; the old one stops working at once."""

    from company_agents import agents
    from company_agents.cli.context import run_in_transaction

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
