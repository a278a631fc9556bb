"""`company-agents secret set|list|rotate|delete|rotate-master-key`.

Values are read from standard input (when it is not a terminal) or a hidden prompt, never from the
command line: argv is visible to every user of the machine and lands in shell history.
"""

from __future__ import annotations

import getpass
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from company_agents.db.database import Database
    from company_agents.master_key import MasterKey
    from company_agents.master_key.rotation import RotationResult


from company_agents.cli.help import id_help
from company_agents.cli.output import print_json, print_table
from company_agents.cli.settings import settings_from
from company_agents.errors import InvalidInput

app = typer.Typer(
    help="Secrets.\n\nCompany-scoped and encrypted; values never appear in output.", no_args_is_help=True
)

CompanyOpt = Annotated[str, typer.Option("--company", help=id_help("company", slug=True))]
NameArg = Annotated[str, typer.Argument(help="Secret name, e.g. anthropic_api_key.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (camelCase).")]


def read_value(prompt: str) -> str:
    """The value from stdin (one trailing newline dropped) or, on a terminal, a hidden prompt."""
    if sys.stdin is not None and not sys.stdin.isatty():
        value = sys.stdin.read()
        if value.endswith("\n"):
            value = value[:-1].removesuffix("\r")
    else:
        value = getpass.getpass(f"{prompt} (input hidden): ")
        if value and getpass.getpass("again, to confirm: ") != value:
            raise InvalidInput("the two entries differ; nothing was stored", field="value")
    if not value:
        raise InvalidInput("empty value; nothing was stored", field="value")
    return value


def secret_public(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "key_id": row["key_id"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "last_used_at": row["last_used_at"],
    }


@app.command("set")
def set_(
    ctx: typer.Context,
    name: NameArg,
    company: CompanyOpt,
    description: Annotated[str, typer.Option(help="What the secret is for.")] = "",
) -> None:
    """Store a new secret; the value comes from stdin or a hidden prompt."""
    from company_agents import companies, secrets_store
    from company_agents.cli.context import run_with_master_key

    secrets_store.check_name(name)
    value = read_value(f"value of {name}")

    async def work(db: Database, key: MasterKey) -> dict[str, Any]:
        async with db.engine.begin() as conn:
            company_id = (await companies.get_company(conn, company))["id"]
            return await secrets_store.create_secret(
                conn, key, company_id=company_id, name=name, value=value, description=description
            )

    row = run_with_master_key(settings_from(ctx), work)
    print(f"stored secret {row['name']} ({row['id']})")


@app.command("list")
def list_(ctx: typer.Context, company: CompanyOpt, json_out: JsonOpt = False) -> None:
    """List a company's secrets: names and dates only, never values."""

    from company_agents import companies, secrets_store
    from company_agents.cli.context import run_read

    async def work(conn: AsyncConnection) -> list[dict[str, Any]]:
        company_id = (await companies.get_company(conn, company))["id"]
        return await secrets_store.list_secrets(conn, company_id)

    rows = run_read(settings_from(ctx), work)
    if json_out:
        print_json([secret_public(r) for r in rows])
        return
    print_table(
        "Secrets",
        ["name", "created", "updated", "last used", "key id"],
        [
            [
                r["name"],
                r["created_at"].strftime("%Y-%m-%d %H:%M"),
                r["updated_at"].strftime("%Y-%m-%d %H:%M"),
                r["last_used_at"].strftime("%Y-%m-%d %H:%M") if r["last_used_at"] else "never",
                r["key_id"],
            ]
            for r in rows
        ],
    )


@app.command()
def rotate(ctx: typer.Context, name: NameArg, company: CompanyOpt) -> None:
    """Replace a secret's value (read from stdin or a hidden prompt)."""
    from company_agents import companies, secrets_store
    from company_agents.cli.context import run_with_master_key

    value = read_value(f"new value of {name}")

    async def work(db: Database, key: MasterKey) -> dict[str, Any]:
        async with db.engine.begin() as conn:
            company_id = (await companies.get_company(conn, company))["id"]
            return await secrets_store.rotate_secret(conn, key, company_id=company_id, name=name, value=value)

    row = run_with_master_key(settings_from(ctx), work)
    print(f"rotated secret {row['name']}")


@app.command()
def delete(
    ctx: typer.Context,
    name: NameArg,
    company: CompanyOpt,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a secret (refused while an integration uses it)."""
    from company_agents import companies, secrets_store
    from company_agents.cli.context import run_in_transaction

    if not yes:
        typer.confirm(f"delete secret {name} of {company}? This cannot be undone", abort=True)

    async def work(conn: AsyncConnection) -> None:
        company_id = (await companies.get_company(conn, company))["id"]
        await secrets_store.delete_secret(conn, company_id=company_id, name=name)

    run_in_transaction(settings_from(ctx), work)
    print(f"deleted secret {name}")


@app.command("rotate-master-key")
def rotate_master_key_(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Generate a new master key and re-encrypt every secret under it, in one transaction.

    The old key file is kept as a dated backup (master.key.<time>.bak) so seals it signed still verify.
    The database records the new key at once: every running orchestrator on it (any host) stops at its
    next heartbeat. Copy the new key to each host, then restart them (docs/deployment.md).
    """
    from company_agents.cli.context import run_with_master_key
    from company_agents.master_key.rotation import rotate_master_key

    if not yes:
        typer.confirm("rotate the master key and re-encrypt every secret?", abort=True)
    settings = settings_from(ctx)

    async def work(db: Database, key: MasterKey) -> RotationResult:
        return await rotate_master_key(settings, db.engine, key)

    result = run_with_master_key(settings, work)
    if json_out:
        print_json(
            {
                "old_key_id": result.old_key_id,
                "new_key_id": result.new_key_id,
                "reencrypted": result.reencrypted,
                "backup": str(result.backup) if result.backup else None,
            }
        )
        return
    print(
        f"master key rotated: {result.old_key_id} -> {result.new_key_id}; "
        f"{result.reencrypted} secrets re-encrypted"
    )
    if result.backup:
        print(f"old key kept at {result.backup} (keep it: seals it signed are verified with it)")
