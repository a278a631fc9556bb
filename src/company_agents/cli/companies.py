"""`company-agents new` and `company-agents company …`."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import companies
from company_agents.cli.context import run_in_transaction
from company_agents.cli.output import print_json, print_table
from company_agents.cli.settings import settings_from

app = typer.Typer(help="Companies: list, show, archive.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (camelCase).")]


def company_public(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "slug": row["slug"],
        "name": row["name"],
        "description": row["description"],
        "budget_usd": row["budget_usd"],
        "fiscal_period": row["fiscal_period"],
        "default_adapter": row["default_adapter"],
        "status": row["status"],
        "created_at": row["created_at"],
        "archived_at": row["archived_at"],
    }


def new(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="Company name.")],
    slug: Annotated[str | None, typer.Option(help="Permanent slug (default: from the name).")] = None,
    description: Annotated[str, typer.Option(help="What the company does.")] = "",
    budget: Annotated[Decimal | None, typer.Option(help="Budget in USD per fiscal period.")] = None,
    fiscal_period: Annotated[str, typer.Option(help="monthly or rolling-30d.")] = "monthly",
    teams: Annotated[str, typer.Option(help="Comma-separated team names.")] = "",
    default_adapter: Annotated[str | None, typer.Option(help="Adapter for agents hired without one.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Create a company."""
    settings = settings_from(ctx)

    async def work(conn: AsyncConnection) -> dict[str, Any]:
        return await companies.create_company(
            conn,
            name=name,
            slug=slug,
            description=description,
            budget_usd=budget,
            fiscal_period=fiscal_period,
            team_names=[t for t in teams.split(",") if t.strip()],
            default_adapter=default_adapter,
        )

    company = run_in_transaction(settings, work)
    if json_out:
        print_json(company_public(company))
    else:
        print(f"created company {company['slug']} ({company['id']})")


@app.command("list")
def list_(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Include archived companies.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """List companies."""
    rows = run_in_transaction(
        settings_from(ctx), lambda conn: companies.list_companies(conn, include_archived=all_)
    )
    if json_out:
        print_json([company_public(r) for r in rows])
        return
    print_table(
        "Companies",
        ["slug", "name", "status", "budget", "created"],
        [[r["slug"], r["name"], r["status"], r["budget_usd"], r["created_at"].date()] for r in rows],
    )


@app.command()
def show(
    ctx: typer.Context, ref: Annotated[str, typer.Argument(help="Slug or id.")], json_out: JsonOpt = False
) -> None:
    """Show one company."""
    row = run_in_transaction(settings_from(ctx), lambda conn: companies.get_company(conn, ref))
    if json_out:
        print_json(company_public(row))
        return
    for key, value in company_public(row).items():
        print(f"{key:<16} {'' if value is None else value}")


@app.command()
def archive(
    ctx: typer.Context, ref: Annotated[str, typer.Argument(help="Slug or id.")], json_out: JsonOpt = False
) -> None:
    """Archive a company: its agents stop taking tasks; nothing is deleted."""
    row = run_in_transaction(settings_from(ctx), lambda conn: companies.archive_company(conn, ref))
    if json_out:
        print_json(company_public(row))
    else:
        print(f"archived {row['slug']}")
