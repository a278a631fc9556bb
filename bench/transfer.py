"""Benchmark: `db export` / `db import` (verification included) against pg_dump -Fc / pg_restore.

    .venv/bin/python bench/transfer.py                       # scratch embedded PostgreSQL 18 under /tmp
    .venv/bin/python bench/transfer.py --admin-dsn postgresql://postgres@127.0.0.1:5432/postgres

Builds one database of ``--rows`` rows (mostly audit_events and cost_entries, generated server-side
with generate_series), then in the same run times: our export, our import into an empty database
(archive check, migration, load, sequence fix and read-back verification), pg_dump -Fc of the same
database, and pg_restore into another empty database, with the pg_dump matching the server's major.
Every scratch database is dropped at the end. Wall-clock figures on a shared machine: expect noise.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from company_agents.db.database import Database, libpq_url, open_database, sqlalchemy_url
from company_agents.db.migrate import upgrade
from company_agents.settings import Settings
from company_agents.transfer import export_database, import_archive

console = Console()

SEED_SQL = """
INSERT INTO companies (id, slug, name) SELECT gen_random_uuid(), 'bench-' || g, 'Bench ' || g
FROM generate_series(1, 10) g;
INSERT INTO agents (company_id, name, role, adapter)
SELECT c.id, 'agent-' || g, 'dev', 'claude' FROM companies c, generate_series(1, 5) g;
"""

TASKS_SQL = """
INSERT INTO tasks (company_id, title, body, status, attempt, fencing_token, finished_at)
SELECT (SELECT id FROM companies ORDER BY slug LIMIT 1 OFFSET g %% 10), 'task ' || g, repeat('b', 60),
       'done', 1, g, now()
FROM generate_series(1, %(n)s) g
"""

AUDIT_SQL = """
INSERT INTO audit_events (company_id, actor, action, subject_type, subject_id, payload, created_at)
SELECT c.id, 'agent:' || (g %% 50), 'task.progress', 'task', md5(g::text),
       jsonb_build_object('step', g, 'note', 'progress note ' || (g %% 997)),
       now() - make_interval(secs => g)
FROM generate_series(1, %(n)s) g, (SELECT id FROM companies ORDER BY slug LIMIT 1) c
"""

COSTS_SQL = """
INSERT INTO cost_entries (company_id, agent_id, kind, model, input_tokens, output_tokens, effective_usd,
                          details, created_at)
SELECT a.company_id, a.id, 'llm', 'model-' || (g %% 3), g %% 5000, g %% 700, (g %% 100000) / 1e6,
       '{"cached": false}'::jsonb, now() - make_interval(secs => g)
FROM generate_series(1, %(n)s) g, (SELECT id, company_id FROM agents ORDER BY id LIMIT 1) a
"""


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextmanager
def scratch_server(admin_dsn: str | None, workdir: Path) -> Iterator[tuple[str, Path, Database | None]]:
    """``(admin url, pg_dump bin dir, embedded handle)``: a throwaway embedded server, or the given one."""
    if admin_dsn is not None:
        with psycopg.connect(admin_dsn) as conn:
            major = conn.info.server_version // 10000
        yield admin_dsn, Path(f"/usr/lib/postgresql/{major}/bin"), None
        return
    db = open_database(Settings(home=workdir / "home"))
    assert db.embedded is not None
    try:
        yield libpq_url(db.embedded.uri("postgres")), db.embedded.bin_path, db
    finally:
        db.close()


def create_db(admin: str, *, migrate: bool) -> str:
    name = f"ca_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(admin, name)
    if migrate:
        engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
        upgrade(engine)
        engine.dispose()
    return url


def drop_db(admin: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def build(url: str, rows: int) -> int:
    tasks, costs = rows // 20, rows * 2 // 5
    audit = rows - tasks - costs
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SEED_SQL)
        for statement, n in ((TASKS_SQL, tasks), (AUDIT_SQL, audit), (COSTS_SQL, costs)):
            conn.execute(statement, {"n": n})
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")
        row = conn.execute(
            "SELECT (SELECT count(*) FROM audit_events) + (SELECT count(*) FROM cost_entries)"
            " + (SELECT count(*) FROM tasks) + (SELECT count(*) FROM companies)"
            " + (SELECT count(*) FROM agents)"
        ).fetchone()
    return int(row[0]) if row else 0


def timed(label: str, work: Callable[[], Any]) -> float:
    console.print(f"  {label}…", end="")
    start = time.perf_counter()
    work()
    elapsed = time.perf_counter() - start
    console.print(f" {elapsed:.2f}s")
    return elapsed


def mb(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--admin-dsn", help="a server to create scratch databases on (default: embedded)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="ca-bench-transfer-"))
    ours, dump = workdir / "export.tar", workdir / "dump.custom"
    with scratch_server(args.admin_dsn, workdir) as (admin, bin_dir, _):
        created: list[str] = []
        dbs: list[Database] = []
        try:
            source, target, restore_target = (create_db(admin, migrate=m) for m in (True, False, False))
            created += [source, target, restore_target]
            console.print(f"building {args.rows:,} rows…")
            start = time.perf_counter()
            total = build(source, args.rows)
            console.print(f"  {total:,} rows in {time.perf_counter() - start:.1f}s")
            dbs += [
                open_database(Settings(home=workdir / f"h{i}", database_url=u))
                for i, u in enumerate((source, target))
            ]
            major = dbs[0].server_version_num // 10000
            console.print(f"PostgreSQL {major}, pg_dump/pg_restore from {bin_dir}")
            t_export = timed("db export", lambda: export_database(dbs[0], ours))
            t_import = timed("db import (checked + verified)", lambda: import_archive(dbs[1], ours))
            pg_dump = [str(bin_dir / "pg_dump"), "-Fc", "-f", str(dump), source]
            t_dump = timed("pg_dump -Fc", lambda: subprocess.run(pg_dump, check=True))
            pg_restore = [str(bin_dir / "pg_restore"), "--no-owner", "-d", restore_target, str(dump)]
            t_restore = timed("pg_restore", lambda: subprocess.run(pg_restore, check=True))
            sizes = mb(ours), mb(dump)
        finally:
            for db in dbs:
                db.close()
            for url in created:
                drop_db(admin, url)
            shutil.rmtree(workdir, ignore_errors=True)
    table = Table(title=f"{total:,} rows, PostgreSQL {major}")
    for column in ("step", "seconds", "rows/s", "file", "ours / theirs"):
        table.add_column(column, justify="right")
    table.add_row(
        "db export", f"{t_export:.2f}", f"{total / t_export:,.0f}", sizes[0], f"{t_export / t_dump:.2f}x"
    )
    table.add_row("pg_dump -Fc", f"{t_dump:.2f}", f"{total / t_dump:,.0f}", sizes[1], "")
    table.add_row(
        "db import", f"{t_import:.2f}", f"{total / t_import:,.0f}", "", f"{t_import / t_restore:.2f}x"
    )
    table.add_row("pg_restore", f"{t_restore:.2f}", f"{total / t_restore:,.0f}", "", "")
    ours_total, theirs = t_export + t_import, t_dump + t_restore
    table.add_row(
        "both", f"{ours_total:.2f}", f"{total / ours_total:,.0f}", "", f"{ours_total / theirs:.2f}x"
    )
    console.print(table)


if __name__ == "__main__":
    main()
