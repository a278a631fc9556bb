"""`company-agents webhook add|list|remove|test|redeliver|deliveries`: signed event deliveries.

The ``whsec_`` signing secret is printed once, by ``add``, and kept in the secret store; deliveries are
sent by ``up`` (docs/events.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from company_agents.db.database import Database
    from company_agents.master_key import MasterKey

from company_agents.cli.help import id_help
from company_agents.cli.output import print_json, print_table
from company_agents.cli.settings import settings_from

app = typer.Typer(
    help="Webhooks.\n\nSigned deliveries (Standard Webhooks) of a company's events to your URLs.",
    no_args_is_help=True,
)

CompanyOpt = Annotated[str, typer.Option("--company", help=id_help("company", slug=True))]
EndpointArg = Annotated[str, typer.Argument(help="The endpoint's id (or its first 6+ characters).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (camelCase).")]


def _public(row: dict[str, Any]) -> dict[str, Any]:
    from company_agents.api.schemas.webhooks import WebhookEndpoint

    return dict(WebhookEndpoint.of(row))


async def _endpoint_id(conn: AsyncConnection, company_id: Any, ref: str) -> Any:
    from uuid import UUID

    from company_agents.errors import AmbiguousId, NotFound
    from company_agents.webhooks import endpoints

    rows = await endpoints.list_endpoints(conn, company_id)
    matches = [r["id"] for r in rows if str(r["id"]) == ref or r["id"].hex.startswith(ref.replace("-", ""))]
    if len(ref.replace("-", "")) < 6 or not matches:
        raise NotFound(f"no webhook endpoint {ref}")
    if len(matches) > 1:
        raise AmbiguousId(f"{ref} names {len(matches)} endpoints; give more characters")
    return UUID(str(matches[0]))


@app.command("add")
def add(
    ctx: typer.Context,
    company: CompanyOpt,
    url: Annotated[str, typer.Option("--url", help="Where to POST events: an http:// or https:// URL.")],
    events: Annotated[
        str,
        typer.Option("--events", help="Comma-separated types or families: task.*,approval.*,budget.* or *."),
    ],
    description: Annotated[str, typer.Option(help="What the endpoint is for.")] = "",
    json_out: JsonOpt = False,
) -> None:
    """Add an endpoint; prints its whsec_ signing secret once (it is kept in the secret store)."""
    from company_agents import companies
    from company_agents.cli.context import run_with_master_key
    from company_agents.webhooks import endpoints

    async def work(db: Database, key: MasterKey) -> tuple[dict[str, Any], str]:
        async with db.engine.begin() as conn:
            company_id = (await companies.get_company(conn, company))["id"]
            return await endpoints.add_endpoint(
                conn, key, company_id=company_id, url=url, events=events.split(","), description=description
            )

    row, secret = run_with_master_key(settings_from(ctx), work)
    if json_out:
        print_json({**_public(row), "secret": secret})
        return
    print(f"added webhook {row['id']} → {row['url']} ({', '.join(row['events'])})")
    print(f"signing secret (shown once): {secret}")


@app.command("list")
def list_(ctx: typer.Context, company: CompanyOpt, json_out: JsonOpt = False) -> None:
    """List a company's endpoints (never their secrets)."""
    from company_agents import companies
    from company_agents.cli.context import run_read
    from company_agents.webhooks import endpoints

    async def work(conn: AsyncConnection) -> list[dict[str, Any]]:
        company_id = (await companies.get_company(conn, company))["id"]
        return await endpoints.list_endpoints(conn, company_id)

    rows = run_read(settings_from(ctx), work)
    if json_out:
        print_json([_public(r) for r in rows])
        return
    print_table(
        "Webhooks",
        ["id", "url", "events", "enabled", "created"],
        [
            [
                str(r["id"])[:8],
                r["url"],
                ",".join(r["events"]),
                "yes" if r["enabled"] else "no",
                r["created_at"].strftime("%Y-%m-%d %H:%M"),
            ]
            for r in rows
        ],
    )


@app.command("remove")
def remove(ctx: typer.Context, endpoint: EndpointArg, company: CompanyOpt) -> None:
    """Remove an endpoint, its deliveries and its signing secret."""
    from company_agents import companies
    from company_agents.cli.context import run_in_transaction
    from company_agents.webhooks import endpoints

    async def work(conn: AsyncConnection) -> Any:
        company_id = (await companies.get_company(conn, company))["id"]
        endpoint_id = await _endpoint_id(conn, company_id, endpoint)
        await endpoints.remove_endpoint(conn, company_id, endpoint_id)
        return endpoint_id

    print(f"removed webhook {run_in_transaction(settings_from(ctx), work)}")


@app.command("test")
def test(ctx: typer.Context, endpoint: EndpointArg, company: CompanyOpt) -> None:
    """Queue a webhook.test event to one endpoint (`up` sends it)."""
    from company_agents import companies
    from company_agents.cli.context import run_in_transaction
    from company_agents.webhooks import endpoints

    async def work(conn: AsyncConnection) -> int:
        company_id = (await companies.get_company(conn, company))["id"]
        return await endpoints.send_test(conn, company_id, await _endpoint_id(conn, company_id, endpoint))

    print(f"queued test delivery {run_in_transaction(settings_from(ctx), work)}")


@app.command("redeliver")
def redeliver(
    ctx: typer.Context,
    delivery: Annotated[int, typer.Argument(help="The delivery's id (see `webhook deliveries`).", min=1)],
    company: CompanyOpt,
) -> None:
    """Queue a delivery's event again, with the same webhook-id."""
    from company_agents import companies
    from company_agents.cli.context import run_in_transaction
    from company_agents.webhooks import endpoints

    async def work(conn: AsyncConnection) -> int:
        company_id = (await companies.get_company(conn, company))["id"]
        return await endpoints.redeliver(conn, company_id, delivery)

    print(f"queued delivery {run_in_transaction(settings_from(ctx), work)}")


@app.command("deliveries")
def deliveries(
    ctx: typer.Context,
    company: CompanyOpt,
    limit: Annotated[int, typer.Option(help="How many, newest first.", min=1, max=200)] = 50,
    json_out: JsonOpt = False,
) -> None:
    """Recent deliveries with their status, attempts and last response."""
    from company_agents import companies
    from company_agents.cli.context import run_read
    from company_agents.webhooks import endpoints

    async def work(conn: AsyncConnection) -> list[dict[str, Any]]:
        company_id = (await companies.get_company(conn, company))["id"]
        return await endpoints.list_deliveries(conn, company_id, limit=limit)

    rows = run_read(settings_from(ctx), work)
    if json_out:
        from company_agents.api.schemas.webhooks import WebhookDelivery

        print_json([WebhookDelivery.of(r) for r in rows])
        return
    print_table(
        "Webhook deliveries",
        ["id", "endpoint", "event", "type", "status", "attempts", "last", "next attempt"],
        [
            [
                str(r["id"]),
                str(r["endpoint_id"])[:8],
                str(r["event_id"]),
                r["event_type"],
                r["status"],
                str(r["attempts"]),
                str(r["last_status_code"] or r["last_error"] or ""),
                r["next_attempt_at"].strftime("%Y-%m-%d %H:%M:%S") if r["status"] == "pending" else "",
            ]
            for r in rows
        ],
    )
