"""The ``company-agents`` command line. Settings are built here, once, and passed down."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.console import Console

from company_agents.cli import adapters as adapters_cli
from company_agents.cli import agents as agents_cli
from company_agents.cli import approvals as approvals_cli
from company_agents.cli import audit as audit_cli
from company_agents.cli import backup as backup_cli
from company_agents.cli import budgets as budgets_cli
from company_agents.cli import companies as companies_cli
from company_agents.cli import costs as costs_cli
from company_agents.cli import dashboard as dashboard_cli
from company_agents.cli import demo as demo_cli
from company_agents.cli import inbox as inbox_cli
from company_agents.cli import integration as integration_cli
from company_agents.cli import logs as logs_cli
from company_agents.cli import memory as memory_cli
from company_agents.cli import orchestrators as orchestrators_cli
from company_agents.cli import pricing as pricing_cli
from company_agents.cli import runs as runs_cli
from company_agents.cli import secrets as secrets_cli
from company_agents.cli import tasks as tasks_cli
from company_agents.cli import tokens as tokens_cli
from company_agents.cli import transfer as transfer_cli
from company_agents.cli import watch as watch_cli
from company_agents.cli import webhooks as webhooks_cli
from company_agents.cli.help import App, add_aliases, add_group, finish
from company_agents.cli.output import print_json, print_table
from company_agents.cli.settings import settings_from

app = App(
    name="company-agents",
    help="Run companies of AI agents on PostgreSQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # `company-agents --install-completion` (bash, zsh, fish, PowerShell); see docs/cli.md.
    add_completion=True,
)
db_app = typer.Typer(
    help="Database.\n\nMigrations, status, the ER diagram; export and import between databases.",
    no_args_is_help=True,
)
db_app.command("export")(transfer_cli.export)
db_app.command("import")(transfer_cli.import_)
# Command groups, one module each, named in the singular with the plural as a hidden alias; keep this
# list sorted.
add_group(app, adapters_cli.app, "adapter", "adapters")
add_group(app, agents_cli.agent_app, "agent", "agents")
add_group(app, approvals_cli.app, "approval", "approvals")
add_group(app, audit_cli.app, "audit")
add_group(app, backup_cli.app, "backup", "backups")
add_group(app, budgets_cli.app, "budget", "budgets")
add_group(app, companies_cli.app, "company", "companies")
costs_cli.app.command("topup")(budgets_cli.topup)
add_group(app, costs_cli.app, "cost", "costs")
add_group(app, dashboard_cli.app, "dashboard")
add_group(app, db_app, "db")
app.command("demo")(demo_cli.demo)
app.command("inbox")(inbox_cli.inbox)
add_group(app, integration_cli.app, "integration", "integrations")
app.command("logs")(logs_cli.logs)
add_group(app, memory_cli.app, "memory")
app.command("new")(companies_cli.new)
app.command("orchestrators")(orchestrators_cli.orchestrators)
add_group(app, pricing_cli.app, "pricing")
add_group(app, runs_cli.app, "run", "runs")
add_group(app, secrets_cli.app, "secret", "secrets")
add_group(app, tasks_cli.app, "task", "tasks")
add_group(app, agents_cli.team_app, "team", "teams")
add_group(app, tokens_cli.app, "token", "tokens")
app.command("watch")(watch_cli.watch)
add_group(app, webhooks_cli.app, "webhook", "webhooks")

console = Console(stderr=True)


@app.callback()
def main(
    ctx: typer.Context,
    home: Annotated[
        Path | None, typer.Option(envvar="COMPANY_AGENTS_HOME", help="Instance home directory.")
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", envvar="COMPANY_AGENTS_DEBUG", help="Show tracebacks on errors.")
    ] = False,
) -> None:
    overrides: dict[str, Any] = {}
    if home is not None:
        overrides["home"] = home
    ctx.obj = {"debug": debug, "overrides": overrides, "settings": None}


def _preload_orchestrator() -> None:
    import importlib

    from company_agents.api.app import ROUTERS

    importlib.import_module("company_agents.runtime.orchestrator")
    for name in ROUTERS:
        importlib.import_module(f"company_agents.api.routes.{name}")


@app.command()
def up(
    ctx: typer.Context,
    max_concurrent_runs: Annotated[
        int | None,
        typer.Option(
            "--max-concurrent-runs",
            envvar="COMPANY_AGENTS_MAX_CONCURRENT_RUNS",
            help="Agent runs this orchestrator drives at once (default: twice the CPU cores).",
            min=1,
        ),
    ] = None,
    dashboard_host: Annotated[
        str | None,
        typer.Option(
            "--dashboard-host",
            envvar="COMPANY_AGENTS_DASHBOARD_HOST",
            help="Serve the dashboard on this address (default: loopback); another machine's reach "
            "needs `dashboard password` first.",
        ),
    ] = None,
) -> None:
    """Start the orchestrator: database, migrations, API, tool endpoint, scheduler, reaper, housekeeping."""
    import asyncio

    from company_agents.dashboard.hosts import check_dashboard_host
    from company_agents.isolation import choose_isolation
    from company_agents.logging_setup import configure_logging
    from company_agents.settings import check_bind_host
    from company_agents.startup import instance

    if max_concurrent_runs is not None:
        ctx.find_root().obj["overrides"]["max_concurrent_runs"] = max_concurrent_runs
    if dashboard_host is not None:
        ctx.find_root().obj["overrides"]["dashboard_host"] = dashboard_host
    settings = settings_from(ctx)
    # Loopback is fine at once; another address waits for the database (are there API tokens?).
    check_bind_host(settings, api_tokens=None)
    # A dashboard other machines reach needs its password: refused before anything starts.
    check_dashboard_host(settings)
    started = time.monotonic()
    # Before anything opens: no agent ever starts unisolated unless that was asked for.
    isolation = choose_isolation(settings)
    # The orchestrator's modules (FastAPI, uvicorn, the runtime, the API's routes) load while the
    # database opens in a worker thread: the embedded server's start is mostly waiting on initdb and
    # pg_ctl, and the imports fill that wait.
    with instance(settings, meanwhile=_preload_orchestrator) as inst:
        from company_agents.runtime.orchestrator import serve

        configure_logging(settings, "orchestrator", to_stderr=False)

        from company_agents.dashboard.app import dashboard_url, private_network
        from company_agents.dashboard.security import new_token

        dashboard_token = new_token()

        def ready() -> None:
            db = inst.db
            console.print(f"[bold green]Company Agents is up[/] in {time.monotonic() - started:.2f}s")
            console.print(f"  home       {settings.home}")
            kind = "embedded PostgreSQL" if db.is_embedded else "DATABASE_URL"
            console.print(
                f"  database   {kind} {db.server_version_num // 10000} — {db.display_url}", soft_wrap=True
            )
            console.print(f"  schema     {inst.schema.current} (head {inst.schema.head})")
            # The link carries the dashboard's access token: it goes to this terminal only (never
            # the log), and lets the browser that opens it in (docs/dashboard.md).
            console.print(f"  dashboard  {dashboard_url(settings, dashboard_token)}", soft_wrap=True)
            if private_network(settings):
                console.print(f"  login      {dashboard_url(settings)}/login (the dashboard password)")
            console.print(f"  api        http://{settings.bind_host}:{settings.api_port}/healthz")
            console.print(f"  tools      http://{settings.bind_host}:{settings.tool_port}/tools/<name>")
            console.print(f"  mcp        http://{settings.bind_host}:{settings.tool_port}/mcp")
            console.print(
                f"  runs       at most {settings.max_concurrent_runs} at once, in {settings.runs_dir}"
            )
            console.print(f"  logs       {settings.logs_dir}")
            console.print(f"  isolation  {isolation.mode} — {isolation.detail}", soft_wrap=True)
            if isolation.warning:
                console.print(f"  [bold red]WARNING[/]    {isolation.warning}", soft_wrap=True)
            console.print("  stop with Ctrl-C")

        asyncio.run(serve(inst, isolation=isolation, on_ready=ready, dashboard_token=dashboard_token))
    console.print("stopped")


@app.command()
def doctor(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Check the home, the master key, the database, migrations and ports; print the fix for each failure."""
    from company_agents.doctor import run_checks

    checks = run_checks(settings_from(ctx))
    out = Console()
    if json_out:
        print_json([c.to_dict() for c in checks])
    else:
        for check in checks:
            mark = "[yellow]warn[/]" if check.warning else "[green]ok  [/]" if check.ok else "[red]fail[/]"
            out.print(f"{mark} {check.name:<22} {check.detail}", soft_wrap=True, highlight=False)
            if (not check.ok or check.warning) and check.fix and check.fix not in check.detail:
                out.print(f"     {'':<22} fix: {check.fix}", soft_wrap=True, highlight=False)
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


@db_app.command("migrate")
def db_migrate(
    ctx: typer.Context,
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Apply pending migrations (under an advisory lock; safe to run concurrently)."""
    from company_agents.db.database import database
    from company_agents.db.migrate import upgrade
    from company_agents.home import ensure_home

    settings = settings_from(ctx)
    ensure_home(settings)
    with database(settings) as db:
        engine = db.sync_engine()
        try:
            status = upgrade(engine, revision)
        finally:
            engine.dispose()
    if json_out:
        print_json(status.to_dict())
    else:
        print(f"database at {status.current} (head {status.head})")


@db_app.command("status")
def db_status(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show the current revision, the head and the pending migrations."""
    from company_agents.db.database import database
    from company_agents.db.migrate import migration_status
    from company_agents.home import ensure_home

    settings = settings_from(ctx)
    ensure_home(settings)
    with database(settings) as db:
        engine = db.sync_engine()
        try:
            status = migration_status(engine)
        finally:
            engine.dispose()
    if json_out:
        print_json(status.to_dict())
        return
    print_table(
        "Migrations",
        ["current", "head", "pending"],
        [[status.current or "(none)", status.head, ", ".join(status.pending) or "none"]],
    )


@db_app.command("diagram")
def db_diagram(
    output: Annotated[Path, typer.Option(help="Where to write the Mermaid diagram.")] = Path(
        "docs/er-diagram.md"
    ),
) -> None:
    """Regenerate the ER diagram (Mermaid) from the table definitions."""
    from company_agents.db.diagram import write_diagram

    changed = write_diagram(output)
    print(f"{output} {'updated' if changed else 'already up to date'}")


def _raise_system_exit(signum: int, _frame: object) -> None:
    # So atexit handlers (the embedded server's reference count) run on SIGTERM too.
    raise SystemExit(128 + signum)


def command(argv: list[str] | None = None) -> Any:
    """The command tree, built from ``app`` and finished for help (``cli.help``).

    With ``argv`` (a command line to run), only the group it names is built: Typer builds a command
    from its signature, and the whole tree costs more than most commands do. Without, or when the line
    names no group (root help, a typo, shell completion), the whole tree.
    """
    groups = list(app.registered_groups)
    keep = _group_named(argv, groups) if argv is not None else None
    if keep is not None:
        app.registered_groups = [g for g in groups if g.name == keep]
    try:
        root = finish(typer.main.get_command(app))
    finally:
        app.registered_groups = groups
    aliases = app.aliases if keep is None else {a: n for a, n in app.aliases.items() if n == keep}
    return add_aliases(root, aliases)


def _group_named(argv: list[str], groups: list[Any]) -> str | None:
    """The group ``argv`` runs a command of (an alias resolved; "" for a root command), or None:
    build everything."""
    if any(key.endswith("_COMPLETE") for key in os.environ):
        return None  # shell completion walks the whole tree
    words = iter(argv)
    for word in words:
        if word == "--home":
            next(words, None)
        elif not word.startswith("-"):
            name = app.aliases.get(word, word)
            if any(g.name == name for g in groups):
                return name
            # A command of the root (`up`, `doctor`, …) needs no group at all.
            return "" if name in _root_commands() else None
    return None


def _root_commands() -> set[str]:
    return {
        c.name or (c.callback.__name__.replace("_", "-") if c.callback else "")
        for c in app.registered_commands
    }


def run() -> None:
    """Console-script entry point: one line per error, a traceback only with --debug.

    With ``--json`` anywhere on the command line an error is the JSON object
    ``{"error": {"code", "message", "details"}}`` on stdout instead (stdout is the machine channel:
    a script reads one JSON document there whatever happened, and the exit status says which).
    """
    signal.signal(signal.SIGTERM, _raise_system_exit)
    argv = sys.argv[1:]
    env_debug = os.environ.get("COMPANY_AGENTS_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")
    debug = "--debug" in argv or env_debug
    as_json = "--json" in argv
    try:
        # With standalone_mode off, click returns (rather than raises) the code of typer.Exit.
        code = command(argv).main(argv, prog_name="company-agents", standalone_mode=False)
        if isinstance(code, int) and code != 0:
            sys.exit(code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (click.ClickException, typer.TyperException) as exc:
        from company_agents.cli.errors import UsageError, report_error

        # Typer raises the usage errors of its own vendored click (a TyperException), not click's.
        report_error(UsageError(exc.format_message()), as_json=as_json)
        sys.exit(getattr(exc, "exit_code", 2))
    except typer.Abort:
        console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # the last line of defence: one line, not a traceback
        from company_agents.cli.errors import edge_error, report_error

        if debug:
            console.print_exception()
        report_error(edge_error(exc), as_json=as_json)
        sys.exit(1)


if __name__ == "__main__":
    run()
