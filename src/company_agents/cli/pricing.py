"""`company-agents pricing …`: the price book's version and a company's per-model overrides."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection


from company_agents.cli.output import print_json, print_table
from company_agents.cli.settings import settings_from
from company_agents.costs.amounts import parse_usd

app = typer.Typer(
    help="Pricing.\n\nThe price book (genai-prices, pinned and offline) and per-company overrides, "
    "in USD per million tokens.",
    no_args_is_help=True,
)

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Machine-readable output (camelCase; prices as strings).")
]
CompanyOpt = Annotated[str, typer.Option("--company", help="Company slug or id.")]
ModelOpt = Annotated[str, typer.Option("--model", help="The model name agents report.")]
PRICE_KEYS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok", "cache_write_1h_mtok")


def override_public(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: row[k] for k in ("id", "model", "note", "set_by", "created_at", "retired_at")}
    for key in PRICE_KEYS:
        out[key] = None if row[key] is None else str(row[key])
    out["price_source"] = f"override:{row['id']}"
    return out


@app.command("list")
def list_(
    ctx: typer.Context,
    company: CompanyOpt,
    history: Annotated[bool, typer.Option("--history", help="Include retired overrides.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """The company's overrides (they win over the book) and the book's version."""
    from company_agents import companies
    from company_agents.cli.context import run_read
    from company_agents.pricing import book_source
    from company_agents.pricing.overrides import list_overrides

    async def work(conn: AsyncConnection) -> list[dict[str, Any]]:
        comp = await companies.get_company(conn, company)
        return [override_public(r) for r in await list_overrides(conn, comp["id"], history=history)]

    rows = run_read(settings_from(ctx), work)
    if json_out:
        print_json({"book": book_source(), "overrides": rows}, nested=("overrides",))
        return
    print(f"price book: {book_source()} (offline; overrides below win)")
    print_table(
        "Overrides (USD per million tokens)",
        ["model", "input", "output", "cache read", "cache write", "1h write", "since", "retired", "note"],
        [
            [
                r["model"],
                r["input_mtok"],
                r["output_mtok"],
                r["cache_read_mtok"] or "= input",
                r["cache_write_mtok"] or "= input",
                r["cache_write_1h_mtok"] or "= cache write",
                r["created_at"].strftime("%Y-%m-%d %H:%M"),
                r["retired_at"].strftime("%Y-%m-%d %H:%M") if r["retired_at"] else "",
                r["note"],
            ]
            for r in rows
        ],
    )


def _price(value: str | None, field: str) -> Decimal | None:
    return None if value is None else parse_usd(value, field=field, negative=True)


@app.command("set")
def set_(
    ctx: typer.Context,
    company: CompanyOpt,
    model: ModelOpt,
    input_mtok: Annotated[str, typer.Option("--input", help="Uncached input, USD per million tokens.")],
    output_mtok: Annotated[str, typer.Option("--output", help="Output, USD per million tokens.")],
    cache_read: Annotated[
        str | None, typer.Option("--cache-read", help="Cache reads (default: the input price).")
    ] = None,
    cache_write: Annotated[
        str | None, typer.Option("--cache-write", help="5-minute cache writes (default: the input price).")
    ] = None,
    cache_write_1h: Annotated[
        str | None,
        typer.Option("--cache-write-1h", help="1-hour cache writes (default: the 5-minute price)."),
    ] = None,
    note: Annotated[
        str | None, typer.Option(help="Why this price (a contract, a self-hosted model…).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Set the company's price for a model; it wins over the book from the next cost on."""
    from company_agents import audit, companies
    from company_agents.cli.context import run_in_transaction
    from company_agents.pricing.overrides import Rates, set_override

    rates = Rates(
        parse_usd(input_mtok, field="input", negative=True),
        parse_usd(output_mtok, field="output", negative=True),
        _price(cache_read, "cache-read"),
        _price(cache_write, "cache-write"),
        _price(cache_write_1h, "cache-write-1h"),
    )

    async def work(conn: AsyncConnection) -> dict[str, Any]:
        comp = await companies.get_company(conn, company)
        row = await set_override(conn, comp["id"], model, rates, set_by=audit.LOCAL_USER, note=note)
        await audit.record(
            conn,
            actor=audit.LOCAL_USER,
            action="pricing.set",
            subject_type="price_override",
            subject_id=row["id"],
            company_id=comp["id"],
            payload={
                "model": row["model"],
                **{k: None if row[k] is None else str(row[k]) for k in PRICE_KEYS},
            },
        )
        return override_public(row)

    row = run_in_transaction(settings_from(ctx), work)
    if json_out:
        print_json(row)
        return
    print(
        f"{row['model']}: ${row['input_mtok']} in / ${row['output_mtok']} out per million tokens "
        f"({row['price_source']})"
    )


@app.command("unset")
def unset(ctx: typer.Context, company: CompanyOpt, model: ModelOpt, json_out: JsonOpt = False) -> None:
    """Remove the company's price for a model: the book prices it again (or it is unpriced)."""
    from company_agents import audit, companies
    from company_agents.cli.context import run_in_transaction
    from company_agents.pricing.overrides import unset_override

    async def work(conn: AsyncConnection) -> dict[str, Any]:
        comp = await companies.get_company(conn, company)
        row = await unset_override(conn, comp["id"], model)
        await audit.record(
            conn,
            actor=audit.LOCAL_USER,
            action="pricing.unset",
            subject_type="price_override",
            subject_id=row["id"],
            company_id=comp["id"],
            payload={"model": row["model"]},
        )
        return override_public(row)

    row = run_in_transaction(settings_from(ctx), work)
    if json_out:
        print_json(row)
        return
    print(f"{row['model']}: override retired; the price book applies again")
