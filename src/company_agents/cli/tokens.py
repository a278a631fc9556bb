"""`company-agents token …`: API tokens for the REST API (docs/api.md). A token is shown once."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from company_agents.cli.output import print_json, print_table
from company_agents.cli.settings import settings_from

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

app = typer.Typer(help="API tokens for /v1: create, list, rotate, revoke.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (camelCase).")]
TokenArg = Annotated[
    str, typer.Argument(help="The token's id (or a unique prefix of 6+ hex digits) or name.")
]


def token_json(row: dict[str, Any], token: str | None = None) -> Any:
    """What ``token list --json`` prints for a token: never its hash; the token itself only when new."""
    from company_agents.api.schemas.tokens import ApiToken

    out = ApiToken.of(row)
    if token is not None:
        out["token"] = token
    return out


def _expiry(value: str | None) -> datetime | None:
    if value is None:
        return None
    from datetime import UTC

    from company_agents.errors import InvalidInput

    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(
            "--expires takes a date or time (2027-01-31, 2027-01-31T12:00Z)", field="expires"
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="What the token is for (a script, CI, a person).")],
    scopes: Annotated[
        str, typer.Option("--scopes", help="Comma-separated: read, write, admin, company:<id>[:read|:write].")
    ] = "read",
    company: Annotated[
        str | None, typer.Option("--company", help="Restrict the token to this company.")
    ] = None,
    expires: Annotated[
        str | None, typer.Option("--expires", help="Expiry date or time (UTC unless given).")
    ] = None,
    env: Annotated[
        str, typer.Option("--env", help="dev or prod (the token's prefix: ca_dev_, ca_prod_).")
    ] = "dev",
    json_out: JsonOpt = False,
) -> None:
    """Create an API token; it is printed once and stored only as a hash."""
    from company_agents import api_tokens
    from company_agents.cli.context import run_in_transaction

    expires_at = _expiry(expires)

    async def work(conn: AsyncConnection) -> tuple[dict[str, Any], str]:
        from company_agents.companies import get_company

        company_id = (await get_company(conn, company))["id"] if company else None
        return await api_tokens.create_token(
            conn,
            name=name,
            scopes=scopes.split(","),
            company_id=company_id,
            env=env,
            expires_at=expires_at,
        )

    row, token = run_in_transaction(settings_from(ctx), work)
    if json_out:
        print_json(token_json(row, token))
        return
    print(f"created token {row['name']} ({row['id']}) scopes {','.join(row['scopes'])}")
    print(f"token (shown once; `token rotate` makes a new one): {token}")


@app.command("list")
def list_(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Include revoked tokens.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """List API tokens (never the tokens themselves)."""
    from company_agents import api_tokens
    from company_agents.cli.context import run_read

    rows = run_read(settings_from(ctx), lambda conn: api_tokens.list_tokens(conn, include_revoked=all_))
    if json_out:
        print_json([token_json(r) for r in rows])
        return
    print_table(
        "API tokens",
        ["id", "name", "starts", "scopes", "expires", "last used", "revoked"],
        [
            [
                str(r["id"]),
                r["name"],
                r["hint"] + "…",
                ",".join(r["scopes"]),
                r["expires_at"],
                r["last_used_at"],
                r["revoked_at"],
            ]
            for r in rows
        ],
    )


@app.command("rotate")
def rotate(ctx: typer.Context, ref: TokenArg, json_out: JsonOpt = False) -> None:
    """Give the token a new secret (same id and scopes); the old one stops working at once."""
    from company_agents import api_tokens
    from company_agents.cli.context import run_in_transaction

    row, token = run_in_transaction(settings_from(ctx), lambda conn: api_tokens.rotate_token(conn, ref))
    if json_out:
        print_json(token_json(row, token))
        return
    print(f"rotated token {row['name']} ({row['id']})")
    print(f"token (shown once): {token}")


@app.command("revoke")
def revoke(ctx: typer.Context, ref: TokenArg, json_out: JsonOpt = False) -> None:
    """Revoke the token: it stops working at once (the row stays for the audit trail)."""
    from company_agents import api_tokens
    from company_agents.cli.context import run_in_transaction

    row = run_in_transaction(settings_from(ctx), lambda conn: api_tokens.revoke_token(conn, ref))
    if json_out:
        print_json(token_json(row))
        return
    print(f"revoked token {row['name']} ({row['id']})")
