"""`company-agents backup create|list|verify|restore|prune`."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path
from typing import Annotated

import typer

from company_agents.cli.output import print_json, print_table
from company_agents.cli.progress import table_progress
from company_agents.cli.settings import settings_from

app = typer.Typer(help="Backups: create, list, verify, restore, prune.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (camelCase).")]


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def _resolve(ctx: typer.Context, file: Path) -> Path:
    """A path, or the bare name of a file in the backups directory."""
    if file.exists() or file.parent != Path("."):
        return file
    candidate = settings_from(ctx).backups_dir / file.name
    return candidate if candidate.exists() else file


@app.command()
def create(
    ctx: typer.Context,
    include_secrets: Annotated[
        bool,
        typer.Option(
            "--include-secrets", help="Also store the master key (whoever has the file can decrypt)."
        ),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Back up the database, run workspaces and audit trail to <home>/data/backups/<UTC time>.tar.gz."""
    from company_agents.backup import create_backup
    from company_agents.cli.context import opened

    settings = settings_from(ctx)
    with opened(settings) as db, table_progress(quiet=json_out) as progress:
        info = create_backup(settings, db, include_secrets=include_secrets, progress=progress)
    if json_out:
        print_json(info.to_dict())
        return
    print(f"backup written: {info.path} ({_size(info.size)}; {', '.join(info.contents())})")
    if not include_secrets:
        print("the master key is not in it: keep a copy of the key elsewhere, or use --include-secrets")


@app.command("list")
def list_(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """List every backup of this database, on any host (the host column says which holds it), oldest first.

    Backups in this home's directory that the database has no record of are listed too (unrecorded).
    """
    from company_agents.backup.records import all_backups
    from company_agents.cli.context import opened

    settings = settings_from(ctx)
    with opened(settings) as db:
        found = all_backups(settings, db)
    if json_out:
        print_json([b.to_dict() for b in found])
        return
    rows = [
        [
            b.name,
            b.host + ("" if b.here else " (elsewhere)"),
            b.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            _size(b.size),
            ", ".join(b.contents),
            "yes" if b.includes_secrets else "no",
            "yes" if b.recorded else "no",
        ]
        for b in found
    ]
    print_table("Backups", ["name", "host", "time", "size", "contents", "secrets", "recorded"], rows)


@app.command()
def verify(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Backup file (or its name in the backups directory).")],
    json_out: JsonOpt = False,
) -> None:
    """Check a backup end to end: every member's checksum and every table's rows. Writes nothing."""
    from company_agents.backup import verify_backup

    path = _resolve(ctx, file)
    with table_progress(quiet=json_out) as progress:
        info = verify_backup(path, progress=progress)
    if json_out:
        print_json({**info.to_dict(), "ok": True})
    else:
        print(f"{path.name} is intact: {', '.join(info.contents())}")


@app.command()
def restore(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Backup file (or its name in the backups directory).")],
    replace: Annotated[
        bool, typer.Option("--replace", help="Overwrite an instance that already holds data.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask before --replace.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Restore a backup into this home's database and runs/ (empty, or --replace). Refused while `up` runs."""
    from company_agents.backup import restore_backup

    settings = settings_from(ctx)
    path = _resolve(ctx, file)
    if replace and not yes:
        target = (settings.database_url and "DATABASE_URL") or f"the embedded database in {settings.home}"
        typer.confirm(
            f"Replace ALL data in {target} and {settings.runs_dir} with {path.name}?", abort=True, err=True
        )
    with table_progress(quiet=json_out) as progress:
        result = restore_backup(settings, path, replace=replace, progress=progress)
    if json_out:
        print_json(result.to_dict())
        return
    print(
        f"restored {path.name}: {result.imported.total_rows} rows (verified), {result.run_files} run files; "
        f"master key: {result.key}"
    )
    print(result.secrets_note)


@app.command()
def prune(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be deleted.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Delete this home's backups beyond retention (the last N daily and M weekly over every host's
    backups; see docs/configuration.md). Other hosts' files are theirs to delete."""
    from company_agents.backup import prune_backups
    from company_agents.cli.context import opened

    settings = settings_from(ctx)
    with opened(settings) as db:
        kept, removed = prune_backups(settings, db, dry_run=dry_run)
    if json_out:
        print_json({"kept": [p.name for p in kept], "removed": [p.name for p in removed], "dry_run": dry_run})
        return
    verb = "would delete" if dry_run else "deleted"
    print(
        f"{verb} {len(removed)} backups, kept {len(kept)} "
        f"(last {settings.backup_keep_daily} daily, {settings.backup_keep_weekly} weekly)"
    )
    for path in removed:
        print(f"  {path.name}")
