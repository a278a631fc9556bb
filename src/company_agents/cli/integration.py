"""`company-agents integration add|list|remove`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from company_agents.db.database import Database
    from company_agents.master_key import MasterKey


from company_agents.cli.help import id_help
from company_agents.cli.output import print_json, print_table
from company_agents.cli.secrets import read_value
from company_agents.cli.settings import settings_from
from company_agents.errors import InvalidInput

app = typer.Typer(
    help="Integrations.\n\nOutside services, their config and credentials.", no_args_is_help=True
)

CompanyOpt = Annotated[str, typer.Option("--company", help=id_help("company", slug=True))]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (camelCase).")]


def integration_public(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "kind": row["kind"],
        "name": row["name"],
        "status": row["status"],
        "scopes": row["scopes"],
        "config": row["config"],
        "credential_secret": row["secret_name"],
        "created_at": row["created_at"],
        "last_used_at": row["last_used_at"],
    }


@app.command()
def add(
    ctx: typer.Context,
    company: CompanyOpt,
    kind: Annotated[str, typer.Option(help="github, slack, http, …")],
    name: Annotated[str, typer.Option(help="A name unique in the company.")],
    config: Annotated[str, typer.Option(help="Non-secret settings as a JSON object.")] = "{}",
    scopes: Annotated[str, typer.Option(help="Comma-separated scopes, e.g. repo,read:org.")] = "",
    secret: Annotated[str | None, typer.Option(help="Use this existing secret as the credential.")] = None,
    credential_stdin: Annotated[
        bool,
        typer.Option("--credential-stdin", help="Read a new credential from stdin (or a hidden prompt)."),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Add an integration; its credential goes to the secret store."""
    from company_agents import companies, integrations
    from company_agents.cli.context import run_in_transaction, run_with_master_key

    try:
        config_obj = json.loads(config)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"--config is not valid JSON: {exc.msg}", field="config") from None
    if secret is not None and credential_stdin:
        raise InvalidInput("give --secret or --credential-stdin, not both", field="secret")
    credential = read_value(f"credential for {name}") if credential_stdin else None
    scope_list = [s for s in scopes.split(",") if s.strip()]

    async def add_in(conn: AsyncConnection, key: MasterKey | None) -> dict[str, Any]:
        company_id = (await companies.get_company(conn, company))["id"]
        return await integrations.add_integration(
            conn,
            key,
            company_id=company_id,
            kind=kind,
            name=name,
            config=config_obj,
            scopes=scope_list,
            secret_name=secret,
            credential=credential,
        )

    async def with_key(db: Database, key: MasterKey) -> dict[str, Any]:
        async with db.engine.begin() as conn:
            return await add_in(conn, key)

    settings = settings_from(ctx)
    # Only a new credential needs the master key.
    if credential is not None:
        row = run_with_master_key(settings, with_key)
    else:
        row = run_in_transaction(settings, lambda conn: add_in(conn, None))
    if json_out:
        print_json(integration_public(row))
    else:
        print(f"added {row['kind']} integration {row['name']}")


@app.command("list")
def list_(ctx: typer.Context, company: CompanyOpt, json_out: JsonOpt = False) -> None:
    """List a company's integrations: metadata only, never credentials."""

    from company_agents import companies, integrations
    from company_agents.cli.context import run_read

    async def work(conn: AsyncConnection) -> list[dict[str, Any]]:
        company_id = (await companies.get_company(conn, company))["id"]
        return await integrations.list_integrations(conn, company_id)

    rows = run_read(settings_from(ctx), work)
    if json_out:
        print_json([integration_public(r) for r in rows])
        return
    print_table(
        "Integrations",
        ["name", "kind", "status", "scopes", "credential", "created", "last used"],
        [
            [
                r["name"],
                r["kind"],
                r["status"],
                ",".join(r["scopes"]),
                r["secret_name"] or "none",
                r["created_at"].strftime("%Y-%m-%d %H:%M"),
                r["last_used_at"].strftime("%Y-%m-%d %H:%M") if r["last_used_at"] else "never",
            ]
            for r in rows
        ],
    )


@app.command()
def remove(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Integration name.")],
    company: CompanyOpt,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove an integration (and the credential secret created for it)."""
    from company_agents import companies, integrations
    from company_agents.cli.context import run_in_transaction

    if not yes:
        typer.confirm(f"remove integration {name} of {company}?", abort=True)

    async def work(conn: AsyncConnection) -> None:
        company_id = (await companies.get_company(conn, company))["id"]
        await integrations.remove_integration(conn, company_id=company_id, name=name)

    run_in_transaction(settings_from(ctx), work)
    print(f"removed integration {name}")
