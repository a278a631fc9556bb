"""``company-agents adapter``: the adapters this instance knows, and whether an agent CLI can run."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer
from rich.console import Console

from company_agents.cli.output import print_json, print_table
from company_agents.cli.settings import settings_from
from company_agents.errors import NotFound

app = typer.Typer(
    help="Adapters.\n\nThe configured and built-in adapters (config.json 'adapters'; docs/adapters.md).",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (camelCase).")]


@app.command("list")
def list_(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """The adapters agents can be hired with."""
    from company_agents.adapters.config import load_adapters

    adapters = load_adapters(settings_from(ctx).config_path)
    rows = [
        {"name": a.name, "type": a.type, "model": a.model, "binary": a.binary, "baseUrl": a.base_url}
        for a in adapters.values()
    ]
    if json_out:
        print_json(rows)
    else:
        print_table(
            "Adapters",
            ["name", "type", "model", "binary"],
            [
                [
                    r["name"],
                    r["type"],
                    r["model"] or "-",
                    r["binary"] or (r["baseUrl"] if r["type"] == "http" else "(found at run time)"),
                ]
                for r in rows
            ],
        )


@app.command("check")
def check(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Adapter name, e.g. claude-code.")],
    company: Annotated[
        str | None, typer.Option("--company", help="Also say which of its secrets the key would come from.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Can this agent CLI run here: its binary and version, the key or login it will use (never the
    value), the provider endpoint, and our MCP server on the tool port. For an http adapter: the remote
    agent's URL, how we authenticate, and whether it answers."""
    from company_agents.adapters.clis.check import check as run_check
    from company_agents.adapters.config import load_adapters

    settings = settings_from(ctx)
    adapters = load_adapters(settings.config_path)
    if name not in adapters:
        raise NotFound(f"no adapter {name!r} (known: {', '.join(sorted(adapters))})", name=name)
    adapter = adapters[name]
    if not adapter.is_cli and not adapter.is_remote:
        raise NotFound(
            f"adapter {name!r} is a {adapter.type} adapter: only agent CLIs and http adapters are checked",
            name=name,
        )
    secrets = _secret_names(settings, company) if company else None
    if adapter.is_remote:
        from company_agents.adapters.remote.check import check as remote_check

        findings = remote_check(adapter, company_secrets=secrets)
    else:
        findings = run_check(
            adapter, dict(os.environ), mcp_url=settings.tool_url.rstrip("/") + "/mcp", company_secrets=secrets
        )
    if json_out:
        print_json([f.to_dict() for f in findings])
    else:
        out = Console()
        for f in findings:
            mark = "[green]ok  [/]" if f.ok else "[red]fail[/]"
            out.print(f"{mark} {f.name:<12} {f.detail}", soft_wrap=True, highlight=False)
            if f.fix:
                out.print(f"     {'':<12} fix: {f.fix}", soft_wrap=True, highlight=False)
    if not all(f.ok for f in findings):
        raise typer.Exit(1)


def _secret_names(settings: Any, company: str) -> set[str]:
    from company_agents.cli.context import run_read
    from company_agents.companies import get_company
    from company_agents.secrets_store import list_secrets

    async def work(conn: Any) -> set[str]:
        company_id = (await get_company(conn, company))["id"]
        return {str(r["name"]) for r in await list_secrets(conn, company_id)}

    names: set[str] = run_read(settings, work)
    return names
