"""The procrastinate baseline for the queue benchmark.

On a fresh database: apply procrastinate's own schema, pre-enqueue ``n`` no-op jobs (not timed), then
run procrastinate's own worker with ``wait=False`` so it drains the queue and stops; the drain time
gives tasks/s.

    python bench/procrastinate_baseline.py --dsn postgresql://postgres@127.0.0.1:5432/fresh -n 2000
    python bench/procrastinate_baseline.py --admin-dsn postgresql://postgres@127.0.0.1:5432/postgres -c 1 -c 4
    python bench/procrastinate_baseline.py --embedded -n 2000 -c 1 -c 4
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import procrastinate
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from company_agents.db.database import libpq_url
from company_agents.db.embedded import EmbeddedServer

try:  # run as a script (bench/ on sys.path) or imported as ``bench.procrastinate_baseline``
    from _common import Row, Timer, print_results  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from bench._common import Row, Timer, print_results  # type: ignore[no-redef,import-not-found,unused-ignore]

ENQUEUE_CHUNK = 1000  # jobs per batch_defer_async call (one INSERT statement each)
TASK_NAME = "bench_noop"


@dataclass(frozen=True)
class BaselineResult:
    tasks_per_s: float
    elapsed_s: float
    n: int
    concurrency: int = 1


# --- databases ---------------------------------------------------------------------------------


def _with_dbname(dsn: str, dbname: str) -> str:
    """``dsn`` pointing at database ``dbname``; URLs stay URLs (their path is the database)."""
    if dsn.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(dsn)
        return urlunsplit(parts._replace(path="/" + dbname))
    return make_conninfo(dsn, dbname=dbname)


def _dbname(dsn: str) -> str:
    name = conninfo_to_dict(dsn).get("dbname")
    if not name:
        raise ValueError(f"no database name in {dsn!r}")
    return str(name)


def create_scratch_db(admin_dsn: str, prefix: str = "bench_proc") -> str:
    """Create an empty database on the server of ``admin_dsn``; returns its DSN."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return _with_dbname(admin_dsn, name)


def drop_db(admin_dsn: str, dsn: str) -> None:
    """Drop the database ``dsn`` points at (through ``admin_dsn``), disconnecting its sessions."""
    name = _dbname(dsn)
    if name == _dbname(admin_dsn):
        raise ValueError(f"refusing to drop the admin database {name!r}")
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextlib.contextmanager
def scratch_db(admin_dsn: str) -> Iterator[str]:
    """A fresh database for the duration of the block."""
    dsn = create_scratch_db(admin_dsn)
    try:
        yield dsn
    finally:
        drop_db(admin_dsn, dsn)


def embedded_admin_dsn(tmpdir: str | Path) -> tuple[str, EmbeddedServer]:
    """Start (or attach to) the embedded server in ``<tmpdir>/db``; returns the admin DSN and the
    handle, whose ``release()`` stops the server when this was the last user."""
    server = EmbeddedServer(Path(tmpdir) / "db")
    server.start()
    return libpq_url(server.uri("postgres")), server


# --- the measurement ---------------------------------------------------------------------------


async def _measure(dsn: str, n_tasks: int, concurrency: int) -> BaselineResult:
    # Fixed-size pool opened before the clock starts: fetch (one at a time) + one finish per running
    # job + heartbeat + abort polling.
    pool_size = concurrency + 3
    connector = procrastinate.PsycopgConnector(conninfo=dsn, min_size=pool_size, max_size=pool_size)
    # Built here, in the script's __main__ module, the App warns that a separate worker process could
    # not import it; our worker runs in this process, so the warning does not apply.
    blueprints_log = logging.getLogger("procrastinate.blueprints")
    level = blueprints_log.level
    blueprints_log.setLevel(logging.ERROR)
    try:
        app = procrastinate.App(connector=connector)
    finally:
        blueprints_log.setLevel(level)

    @app.task(name=TASK_NAME)
    async def noop() -> None:
        return None

    async with app.open_async():
        existing = await connector.execute_query_one_async(
            query="SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS present"
        )
        if existing["present"]:
            raise RuntimeError(f"{_dbname(dsn)!r} already has procrastinate's schema; give a fresh database")
        await app.schema_manager.apply_schema_async()
        for start in range(0, n_tasks, ENQUEUE_CHUNK):
            await noop.batch_defer_async(*({} for _ in range(min(ENQUEUE_CHUNK, n_tasks - start))))

        with Timer() as timer:
            await app.run_worker_async(
                concurrency=concurrency,
                wait=False,  # stop once the queue is empty
                listen_notify=False,  # nothing new arrives; don't hold a LISTEN connection
                install_signal_handlers=False,
                delete_jobs="never",  # the default: finished jobs stay as 'succeeded' rows
            )

        rows = await connector.execute_query_all_async(
            query="SELECT status::text AS status, count(*) AS n FROM procrastinate_jobs GROUP BY status"
        )
    counts = {str(row["status"]): int(row["n"]) for row in rows}
    if counts != {"succeeded": n_tasks}:
        raise RuntimeError(f"procrastinate did not drain {n_tasks} jobs cleanly: {counts}")
    elapsed = timer.elapsed
    return BaselineResult(
        tasks_per_s=n_tasks / elapsed, elapsed_s=elapsed, n=n_tasks, concurrency=concurrency
    )


def measure_procrastinate(
    dsn: str, n_tasks: int, *, concurrency: int = 1, batched: bool = False
) -> BaselineResult:
    """Drain ``n_tasks`` pre-enqueued no-op jobs with procrastinate's own worker on the fresh
    database ``dsn`` (libpq DSN); only the drain is timed.

    ``concurrency`` is the worker's number of concurrently running (async) jobs; it still fetches
    jobs one query at a time. ``batched=True`` raises: procrastinate has no batched claim.
    """
    if batched:
        raise NotImplementedError("procrastinate fetches one job per query; it has no batched claim")
    if n_tasks < 1 or concurrency < 1:
        raise ValueError("n_tasks and concurrency must be positive")
    return asyncio.run(_measure(libpq_url(dsn), n_tasks, concurrency))


# --- command line ------------------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--dsn", help="a fresh, empty database (one run only)")
    where.add_argument("--admin-dsn", help="a server: each run gets its own scratch database")
    where.add_argument("--embedded", action="store_true", help="a throwaway embedded server")
    parser.add_argument("-n", "--tasks", type=int, default=2000, help="jobs per run (default 2000)")
    parser.add_argument(
        "-c",
        "--concurrency",
        type=int,
        action="append",
        help="worker concurrency; repeat for several runs (default 1)",
    )
    args = parser.parse_args(argv)
    args.concurrency = args.concurrency or [1]
    if args.dsn and len(args.concurrency) > 1:
        parser.error("--dsn is one fresh database: one run only; use --admin-dsn or --embedded")
    return args


def _run_all(admin_dsn: str, n_tasks: int, concurrencies: list[int]) -> list[BaselineResult]:
    results = []
    for concurrency in concurrencies:
        with scratch_db(admin_dsn) as dsn:
            results.append(measure_procrastinate(dsn, n_tasks, concurrency=concurrency))
    return results


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    if args.dsn:
        where = "dsn"
        results = [measure_procrastinate(args.dsn, args.tasks, concurrency=args.concurrency[0])]
    elif args.admin_dsn:
        where = "server"
        results = _run_all(args.admin_dsn, args.tasks, args.concurrency)
    else:
        where = "embedded"
        with tempfile.TemporaryDirectory(prefix="bench-proc-") as tmpdir:
            admin_dsn, server = embedded_admin_dsn(tmpdir)
            try:
                results = _run_all(admin_dsn, args.tasks, args.concurrency)
            finally:
                server.release()

    rows = [
        Row(
            f"procrastinate c={result.concurrency}",
            result.tasks_per_s,
            {"n": result.n, "elapsed s": result.elapsed_s},
        )
        for result in results
    ]
    print_results(
        rows, baseline=rows[0].name, title=f"procrastinate {procrastinate.__version__} baseline ({where})"
    )


if __name__ == "__main__":
    main()
