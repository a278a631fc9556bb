"""The ``company-agents`` command line. Settings are built here, once, and passed down."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.console import Console

from company_agents.cli import agents as agents_cli
from company_agents.cli import audit as audit_cli
from company_agents.cli import backup as backup_cli
from company_agents.cli import companies as companies_cli
from company_agents.cli import demo as demo_cli
from company_agents.cli import integration as integration_cli
from company_agents.cli import memory as memory_cli
from company_agents.cli import runs as runs_cli
from company_agents.cli import secrets as secrets_cli
from company_agents.cli import tasks as tasks_cli
from company_agents.cli import transfer as transfer_cli
from company_agents.cli.errors import UsageError, edge_error, report_error
from company_agents.cli.output import print_json, print_table
from company_agents.cli.settings import settings_from

app = typer.Typer(
    name="company-agents",
    help="Run companies of AI agents on PostgreSQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database: migrations, status, the ER diagram.", no_args_is_help=True)
app.add_typer(db_app, name="db")
db_app.command("export")(transfer_cli.export)
db_app.command("import")(transfer_cli.import_)
# Command groups, one module each; keep this list sorted.
app.add_typer(agents_cli.agent_app, name="agent")
app.add_typer(audit_cli.app, name="audit")
app.add_typer(backup_cli.app, name="backup")
app.add_typer(companies_cli.app, name="company")
app.command("demo")(demo_cli.demo)
app.add_typer(integration_cli.app, name="integration")
app.add_typer(memory_cli.app, name="memory")
app.command("new")(companies_cli.new)
app.add_typer(runs_cli.app, name="run")
app.add_typer(secrets_cli.app, name="secrets")
app.add_typer(tasks_cli.app, name="task")
app.add_typer(agents_cli.team_app, name="team")

console = Console(stderr=True)


@app.callback()
def main(
    ctx: typer.Context,
    home: Annotated[
        Path | None, typer.Option(envvar="COMPANY_AGENTS_HOME", help="Instance home directory.")
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    overrides: dict[str, Any] = {}
    if home is not None:
        overrides["home"] = home
    ctx.obj = {"debug": debug, "overrides": overrides, "settings": None}


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
) -> None:
    """Start the orchestrator: database, migrations, API, tool endpoint, scheduler, reaper, housekeeping."""
    import asyncio

    from company_agents.logging_setup import configure_logging
    from company_agents.runtime.orchestrator import serve
    from company_agents.settings import check_bind_host
    from company_agents.startup import instance

    if max_concurrent_runs is not None:
        ctx.find_root().obj["overrides"]["max_concurrent_runs"] = max_concurrent_runs
    settings = settings_from(ctx)
    check_bind_host(settings)  # before anything starts: nothing is served beyond this machine
    started = time.monotonic()
    with instance(settings) as inst:
        configure_logging(settings, "orchestrator", to_stderr=False)

        def ready() -> None:
            db = inst.db
            console.print(f"[bold green]Company Agents is up[/] in {time.monotonic() - started:.2f}s")
            console.print(f"  home       {settings.home}")
            kind = "embedded PostgreSQL" if db.is_embedded else "DATABASE_URL"
            console.print(
                f"  database   {kind} {db.server_version_num // 10000} — {db.display_url}", soft_wrap=True
            )
            console.print(f"  schema     {inst.schema.current} (head {inst.schema.head})")
            console.print(f"  api        http://{settings.bind_host}:{settings.api_port}/healthz")
            console.print(f"  tools      http://{settings.bind_host}:{settings.tool_port}/tools/<name>")
            console.print(
                f"  runs       at most {settings.max_concurrent_runs} at once, in {settings.runs_dir}"
            )
            console.print(f"  logs       {settings.logs_dir}")
            console.print("  stop with Ctrl-C")

        asyncio.run(serve(inst, on_ready=ready))
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
            mark = "[green]ok  [/]" if check.ok else "[red]fail[/]"
            out.print(f"{mark} {check.name:<22} {check.detail}", soft_wrap=True, highlight=False)
            if not check.ok and check.fix and check.fix not in check.detail:
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


def run() -> None:
    """Console-script entry point: one line per error, a traceback only with --debug.

    With ``--json`` anywhere on the command line an error is the JSON object
    ``{"error": {"code", "message", "details"}}`` on stdout instead (stdout is the machine channel:
    a script reads one JSON document there whatever happened, and the exit status says which).
    """
    signal.signal(signal.SIGTERM, _raise_system_exit)
    argv = sys.argv[1:]
    debug = "--debug" in argv
    as_json = "--json" in argv
    try:
        # With standalone_mode off, click returns (rather than raises) the code of typer.Exit.
        code = app(standalone_mode=False)
        if isinstance(code, int) and code != 0:
            sys.exit(code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (click.ClickException, typer.TyperException) as exc:
        # Typer raises the usage errors of its own vendored click (a TyperException), not click's.
        report_error(UsageError(exc.format_message()), as_json=as_json)
        sys.exit(getattr(exc, "exit_code", 2))
    except typer.Abort:
        console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # the last line of defence: one line, not a traceback
        if debug:
            console.print_exception()
        report_error(edge_error(exc), as_json=as_json)
        sys.exit(1)


if __name__ == "__main__":
    run()
