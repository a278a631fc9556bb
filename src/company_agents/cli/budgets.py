"""`company-agents budget set|show` and `company-agents costs topup` (docs/budgets.md)."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import typer

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection


from company_agents.cli.output import print_json, print_table
from company_agents.cli.settings import settings_from

app = typer.Typer(
    help="Budgets: caps per company, team, agent and task; show what is enforced.", no_args_is_help=True
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (camelCase).")]
CompanyOpt = Annotated[str, typer.Option("--company", help="Company slug or id.")]


@app.command("show")
def show(ctx: typer.Context, company: CompanyOpt, json_out: JsonOpt = False) -> None:
    """Every budget of a company: cap, spent this period, reserved by running work, breach level."""
    from company_agents.budgets import manage
    from company_agents.cli.context import run_read

    state = run_read(settings_from(ctx), lambda conn: manage.show(conn, company=company))
    if json_out:
        print_json(state)
        return
    reserve = state["reserve"]
    print(
        f"{state['company']}: fiscal period {state['fiscalPeriod']} ({state['timeZone']}); "
        f"reserve {reserve['remainingUsd']} of {reserve['usd']} USD left for top-ups"
    )
    print_table(
        "Budgets",
        ["scope", "name", "cap", "spent", "reserved", "remaining", "% used", "level"],
        [
            [
                b["scope"],
                b["name"],
                b["capUsd"],
                b["spentUsd"],
                b["reservedUsd"],
                b["remainingUsd"],
                b["percentUsed"],
                b["level"] or "",
            ]
            for b in state["budgets"]
        ],
    )


@app.command("set")
def set_(
    ctx: typer.Context,
    company: CompanyOpt,
    usd: Annotated[
        Decimal | None,
        typer.Option("--usd", help="The cap in USD per period (a task's: across its attempts)."),
    ] = None,
    default: Annotated[bool, typer.Option("--default", help="Back to the default cap.")] = False,
    team: Annotated[str | None, typer.Option(help="A team (name or id).")] = None,
    agent: Annotated[str | None, typer.Option(help="An agent (name or id).")] = None,
    task: Annotated[str | None, typer.Option(help="A task id.")] = None,
    workflow: Annotated[str | None, typer.Option(help="A workflow id (tasks.workflow_id).")] = None,
    task_default: Annotated[
        bool, typer.Option("--task-default", help="With --agent: the budget of each task the agent runs.")
    ] = False,
    period: Annotated[
        str | None, typer.Option("--period", help="The company's fiscal period: monthly or rolling-30d.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Set the cap of the company (no --team/--agent/--task), a team, an agent or a task."""
    from company_agents.budgets import manage
    from company_agents.cli.context import run_in_transaction
    from company_agents.errors import InvalidInput

    if (usd is None) == (not default) and period is None:
        raise InvalidInput("give --usd AMOUNT or --default", field="usd")

    async def work(conn: AsyncConnection) -> dict[str, Any]:
        return await manage.set_budget(
            conn,
            company=company,
            usd=None if default else usd,
            team=team,
            agent=agent,
            task=task,
            workflow=UUID(workflow) if workflow else None,
            task_default=task_default,
            fiscal_period=period,
            change_cap=usd is not None or default,
        )

    row = run_in_transaction(settings_from(ctx), work)
    if json_out:
        print_json(row)
    else:
        cap = "the default" if row["usd"] is None else f"{row['usd']} USD"
        print(f"{row['scope']} {row['name']}: cap {cap}")


def topup(
    ctx: typer.Context,
    company: CompanyOpt,
    team: Annotated[str, typer.Option("--team", help="The team (name or id) the reserve moves into.")],
    usd: Annotated[Decimal, typer.Option("--usd", help="How much of the company's reserve, in USD.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit trail).")] = "",
    json_out: JsonOpt = False,
) -> None:
    """Move part of the company's reserve (20% of its cap) into a team's budget for this period."""
    from company_agents.budgets import manage
    from company_agents.cli.context import run_in_transaction

    row = run_in_transaction(
        settings_from(ctx),
        lambda conn: manage.topup(conn, company=company, team=team, usd=usd, reason=reason),
    )
    if json_out:
        print_json(row)
    else:
        print(f"team {row['team']}: cap {row['teamCapUsd']} USD; reserve left {row['reserveLeftUsd']} USD")
