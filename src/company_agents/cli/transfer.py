"""`company-agents db export` and `db import` (registered on the `db` group in cli/main.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from company_agents.cli.output import print_json
from company_agents.cli.progress import table_progress
from company_agents.cli.settings import settings_from

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (camelCase).")]


def manifest_public(path: Path, manifest: Any) -> dict[str, Any]:
    return {
        "file": str(path),
        "bytes": path.stat().st_size,
        "schema_revision": manifest.schema_revision,
        "server_version": manifest.server_version,
        "created_at": manifest.created_at,
        "total_rows": manifest.total_rows,
        "tables": [{"name": t.name, "rows": t.rows, "sha256": t.sha256} for t in manifest.tables],
    }


def export(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Archive to write (a tar file; replaced atomically).")],
    json_out: JsonOpt = False,
) -> None:
    """Export every table, as one consistent snapshot, to an archive (safe while `up` runs)."""
    from company_agents.cli.context import opened
    from company_agents.transfer import export_database

    with opened(settings_from(ctx)) as db, table_progress(quiet=json_out) as progress:
        manifest = export_database(db, file, progress=progress)
    if json_out:
        print_json(manifest_public(file, manifest))
    else:
        size = file.stat().st_size
        print(
            f"exported {manifest.total_rows} rows from {len(manifest.tables)} tables to {file} "
            f"({size / 1e6:.1f} MB, schema {manifest.schema_revision}, PostgreSQL {manifest.server_version})"
        )


def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Archive written by `db export`.")],
    replace: Annotated[
        bool, typer.Option("--replace", help="Overwrite a target that already holds data.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Import an archive into the database the settings point at; verified before it commits."""
    from company_agents.db.database import database
    from company_agents.home import ensure_home
    from company_agents.transfer import import_archive

    settings = settings_from(ctx)
    ensure_home(settings)
    with database(settings) as db, table_progress(quiet=json_out) as progress:
        result = import_archive(db, file, replace=replace, progress=progress)
        where = db.display_url
    if json_out:
        print_json({"file": str(file), "database": where, **result.to_dict()})
    else:
        print(
            f"imported {result.total_rows} rows into {len(result.tables)} tables of {where}; "
            f"counts and checksums verified; schema at {result.revision}"
        )
