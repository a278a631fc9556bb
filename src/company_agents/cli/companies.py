"""`company-agents new` and `company-agents company …`."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection


from company_agents.cli.details import local_time, print_fields
from company_agents.cli.help import id_argument
from company_agents.cli.output import print_json, print_table
from company_agents.cli.settings import settings_from

app = typer.Typer(help="Companies: list, show, archive.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (camelCase).")]
CompanyArg = Annotated[str, id_argument("company", slug=True)]


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


def company_json(row: dict[str, Any]) -> Any:
    """``--json`` prints what ``GET /v1/companies/{company}`` answers: the same model (docs/api.md)."""
    from company_agents.api.schemas.companies import Company

    return Company.of(row)


@app.command("create")
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
    """Create a company with its teams; `new` and `company create` are the same command."""
    from company_agents import companies
    from company_agents.cli.context import run_in_transaction

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
        print_json(company_json(company))
    else:
        print(f"created company {company['slug']} ({company['id']})")


@app.command("list")
def list_(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Include archived companies.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """List companies."""
    from company_agents import companies
    from company_agents.cli.context import run_read
    from company_agents.ids import short_id

    rows = run_read(settings_from(ctx), lambda conn: companies.list_companies(conn, include_archived=all_))
    if json_out:
        print_json([company_json(r) for r in rows])
        return
    print_table(
        "Companies",
        ["id", "slug", "name", "status", "budget", "created"],
        [
            [short_id(r["id"]), r["slug"], r["name"], r["status"], r["budget_usd"], r["created_at"].date()]
            for r in rows
        ],
    )


@app.command()
def show(
    ctx: typer.Context,
    ref: CompanyArg,
    json_out: JsonOpt = False,
) -> None:
    """Show one company."""
    from company_agents import companies
    from company_agents.cli.context import run_read

    row = run_read(settings_from(ctx), lambda conn: companies.get_company(conn, ref))
    if json_out:
        print_json(company_json(row))
        return
    public = company_public(row)
    print_fields(
        [
            ("id", public["id"]),
            ("slug", public["slug"]),
            ("name", public["name"]),
            ("status", public["status"]),
            ("description", public["description"] or ""),
            (
                "budget",
                f"${public['budget_usd']} {public['fiscal_period']}" if public["budget_usd"] else "none",
            ),
            ("fiscal period", public["fiscal_period"]),
            ("default adapter", public["default_adapter"] or ""),
            ("created", local_time(public["created_at"])),
            ("archived", local_time(public["archived_at"]) or "no"),
        ]
    )


@app.command()
def archive(
    ctx: typer.Context,
    ref: CompanyArg,
    json_out: JsonOpt = False,
) -> None:
    """Archive a company: its agents stop taking tasks; nothing is deleted."""
    from company_agents import companies
    from company_agents.cli.context import run_in_transaction

    row = run_in_transaction(settings_from(ctx), lambda conn: companies.archive_company(conn, ref))
    if json_out:
        print_json(company_json(row))
    else:
        print(f"archived {row['slug']}")
