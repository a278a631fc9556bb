"""`company-agents dashboard password`: the password of the private-network mode (docs/dashboard.md)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from company_agents.cli.settings import settings_from

app = typer.Typer(
    help="The browser dashboard.\n\n`up` serves it; on an address other machines reach "
    "(`up --dashboard-host`) it asks for the password set here.",
    no_args_is_help=True,
)


@app.command()
def password(
    ctx: typer.Context,
    stdin: Annotated[
        bool, typer.Option("--stdin", help="Read the password from the first line of standard input.")
    ] = False,
) -> None:
    """Set the dashboard password (kept in the home as a scrypt hash; never an argument). Restart `up`."""
    from company_agents.dashboard.password import write_password
    from company_agents.home import ensure_home

    if stdin:
        value = sys.stdin.readline().rstrip("\r\n")
    else:
        value = typer.prompt("Dashboard password", hide_input=True, confirmation_prompt=True)
    settings = settings_from(ctx)
    ensure_home(settings)
    write_password(settings, value)
    print(f"dashboard password set ({settings.dashboard_password_path}); restart `up` to use it")
