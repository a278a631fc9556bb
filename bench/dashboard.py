"""Dashboard read paths at the issue's size: p50/p95 of the overview read model
(``overview.company_overview``), of ``GET /v1/companies/{c}/overview`` over real HTTP (the API app
under uvicorn, in a thread with its own loop), and the server-side render of the dashboard's overview
page, tasks board and costs page (the dashboard app through its ASGI interface, no socket: read and
render only), against the read model alone, in the same run.

    .venv/bin/python bench/dashboard.py                       # scratch embedded PostgreSQL
    .venv/bin/python bench/dashboard.py --admin-dsn postgresql://postgres@127.0.0.1:5432/postgres
    .venv/bin/python bench/dashboard.py --tasks 10000 --audit 100000 --costs 100000   # a quick look

One company (4 teams of 5 agents) gets ``--tasks`` tasks over 90 days (mostly finished, 1% in flight, one
running task per agent with its lease and a progress report), a run per started task, ``--audit`` audit
events and ``--costs`` cost entries over the last 60 days, all generated server-side with
generate_series (not timed); the daily counters are rebuilt from that ledger (``costs rebuild``). Goal
(issue 15): the overview under 100 ms server-side (p95).

The figures are a list of named measurements (``measurements``): a later page (the dashboard's
overview, tasks board, costs page) joins the same table by adding one ``Measurement`` whose call
renders it, e.g. through ``ctx.serve(app)`` for an ASGI app of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import uvicorn
from rich.console import Console
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from company_agents import api_tokens, overview
from company_agents.api.app import create_app
from company_agents.costs import rebuild
from company_agents.dashboard.app import create_dashboard_app
from company_agents.db.database import Database, sqlalchemy_url
from company_agents.settings import Settings

try:  # run as a script (bench/ on sys.path) or imported as ``bench.dashboard``
    from _common import Row, percentile, print_results  # type: ignore[import-not-found,unused-ignore]
    from api import free_port  # type: ignore[import-not-found,unused-ignore]
    from transfer import create_db, drop_db, scratch_server  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover
    from bench._common import Row, percentile, print_results  # type: ignore[no-redef,import-not-found,unused-ignore]
    from bench.api import free_port  # type: ignore[no-redef,import-not-found,unused-ignore]
    from bench.transfer import (  # type: ignore[no-redef,import-not-found,unused-ignore]
        create_db,
        drop_db,
        scratch_server,
    )

console = Console()
BASELINE = "overview read model"

COMPANY_SQL = """
INSERT INTO companies (slug, name, budget_usd, time_zone) VALUES ('bench', 'Bench', 5000, 'Europe/Berlin')
RETURNING id
"""
SEED_SQL = """
INSERT INTO teams (company_id, name) SELECT c.id, 'team-' || g FROM companies c, generate_series(1, 4) g;
INSERT INTO agents (company_id, team_id, name, role, adapter)
SELECT t.company_id, t.id, t.name || '-agent-' || g, 'dev', 'process' FROM teams t, generate_series(1, 5) g;
CREATE TABLE bench_agents AS SELECT row_number() OVER (ORDER BY name) - 1 AS n, id, team_id FROM agents;
"""

# Task g: 90% done, 4% failed, 1% cancelled, 4% queued, 1% in flight (review, blocked, handoff, assigned);
# the newest task of each agent is running. Created over 90 days, newest first; finished a minute later.
TASKS_SQL = """
INSERT INTO tasks (company_id, title, status, assigned_agent_id, attempt, blocked_reason, created_at,
                   updated_at, finished_at)
SELECT c.id, 'task ' || g, s.status, a.id, CASE WHEN s.status = 'queued' THEN 0 ELSE 1 END,
       CASE WHEN s.status = 'blocked' THEN 'approval' END, at, at,
       CASE WHEN s.status IN ('done', 'failed', 'cancelled') THEN at + interval '1 minute' END
FROM generate_series(0, %(n)s - 1) g
CROSS JOIN companies c
JOIN bench_agents a ON a.n = g %% 20
CROSS JOIN LATERAL (SELECT now() - interval '90 days' * (g::float8 / %(n)s) AS at) t
CROSS JOIN LATERAL (SELECT CASE
    WHEN g < 20 THEN 'running'
    WHEN g %% 100 < 90 THEN 'done'
    WHEN g %% 100 < 94 THEN 'failed'
    WHEN g %% 100 = 94 THEN 'cancelled'
    WHEN g %% 100 < 99 THEN 'queued'
    ELSE (ARRAY['review', 'blocked', 'handoff', 'assigned'])[1 + (g / 100) %% 4]
END AS status) s
"""
RUNS_SQL = """
INSERT INTO runs (task_id, company_id, agent_id, attempt, fencing_token, status, started_at, ended_at)
SELECT t.id, t.company_id, t.assigned_agent_id, 1, 1,
       CASE t.status WHEN 'running' THEN 'running' WHEN 'failed' THEN 'failed'
                     WHEN 'cancelled' THEN 'cancelled' WHEN 'handoff' THEN 'handed_off' ELSE 'succeeded' END,
       t.created_at, CASE WHEN t.status <> 'running' THEN t.created_at + interval '1 minute' END
FROM tasks t WHERE t.status NOT IN ('queued', 'blocked', 'assigned')
"""
LEASES_SQL = """
INSERT INTO leases (task_id, run_id, agent_id, company_id, fencing_token, token_hash, expires_at,
                    reserved_usd)
SELECT r.task_id, r.id, r.agent_id, r.company_id, 1, md5(r.id::text), now() + interval '1 hour', 1
FROM runs r WHERE r.status = 'running';
INSERT INTO run_checkpoints (run_id, fencing_token, payload)
SELECT r.id, 1, jsonb_build_object('message', 'working on it ' || k, 'step', 'step ' || k, 'percent', k * 10)
FROM runs r CROSS JOIN generate_series(1, 5) k WHERE r.status = 'running'
"""
APPROVALS_SQL = """
INSERT INTO approvals (company_id, task_id, agent_id, action, status, requested_by, decided_by, decided_at,
                       expires_at)
SELECT t.company_id, t.id, t.assigned_agent_id, 'act ' || row_number() OVER (),
       CASE WHEN t.status = 'blocked' THEN 'pending' ELSE 'approved' END, 'agent:x',
       CASE WHEN t.status = 'blocked' THEN NULL ELSE 'user:local' END,
       CASE WHEN t.status = 'blocked' THEN NULL ELSE t.created_at END, now() + interval '1 day'
FROM tasks t WHERE t.status IN ('blocked', 'review')
"""
AUDIT_SQL = """
INSERT INTO audit_events (company_id, actor, action, subject_type, subject_id, payload, created_at)
SELECT c.id, 'agent:bench', (ARRAY['task.created', 'task.claimed', 'run.ended', 'cost.recorded'])[1 + g %% 4],
       'task', g::text, jsonb_build_object('n', g), now() - interval '90 days' * (g::float8 / %(n)s)
FROM companies c, generate_series(0, %(n)s - 1) g
"""
COSTS_SQL = """
INSERT INTO cost_entries (company_id, team_id, agent_id, kind, model, input_tokens, output_tokens,
                          billed_usd, imputed_usd, effective_usd, unpriced, price_source, created_at)
SELECT c.id, a.team_id, a.id, CASE WHEN g %% 10 = 0 THEN 'tool' ELSE 'llm' END, 'model-' || (g %% 3),
       g %% 5000, g %% 700,
       CASE WHEN g %% 997 = 0 THEN NULL ELSE (g %% 1000) / 1e5 END,
       CASE WHEN g %% 997 = 0 THEN NULL ELSE (g %% 1000) / 1e5 END,
       CASE WHEN g %% 997 = 0 THEN NULL ELSE (g %% 1000) / 1e5 END,
       g %% 997 = 0, 'book:bench', now() - interval '60 days' * (g::float8 / %(n)s)
FROM generate_series(0, %(n)s - 1) g
JOIN bench_agents a ON a.n = g %% 20
CROSS JOIN companies c
"""


def build(url: str, *, tasks: int, audit: int, costs: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(COMPANY_SQL)
        conn.execute(SEED_SQL)
        # Generated rows are consistent by construction: skip the per-row triggers (foreign keys, the
        # audit MAC and feed triggers) as a bulk load would (superuser).
        conn.execute("SET session_replication_role = replica")
        for label, statement, n in (
            ("tasks", TASKS_SQL, tasks),
            ("runs", RUNS_SQL, 0),
            ("leases", LEASES_SQL, 0),
            ("approvals", APPROVALS_SQL, 0),
            ("audit events", AUDIT_SQL, audit),
            ("cost entries", COSTS_SQL, costs),
        ):
            started = time.perf_counter()
            conn.execute(statement, {"n": n})
            console.print(f"  {label}: {time.perf_counter() - started:.1f}s")
        conn.execute("SET session_replication_role = DEFAULT")
        conn.execute("DROP TABLE bench_agents")
        conn.execute("VACUUM ANALYZE")


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # not the main thread
        pass


@dataclass
class Context:
    """What a measurement may use: the database, the bench company, an admin API token and the API."""

    url: str
    home: Path
    db: Database
    company_id: str
    slug: str
    token: str
    api: httpx.AsyncClient = field(init=False)
    dashboard: httpx.AsyncClient = field(init=False)
    _servers: list[tuple[_Server, threading.Thread]] = field(default_factory=list)

    def serve(self, app: Any) -> str:
        """Serve an ASGI app on a free loopback port (in a thread with its own loop); its base URL."""
        port = free_port()
        server = _Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
        )
        thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
        thread.start()
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        self._servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        for server, thread in self._servers:
            server.should_exit = True
            thread.join(timeout=10)


@dataclass(frozen=True)
class Measurement:
    """One figure: ``call`` does one timed request or domain call (raising on a wrong answer)."""

    name: str
    call: Callable[[Context], Awaitable[None]]


async def _read_model(ctx: Context) -> None:
    import uuid

    async with ctx.db.engine.connect() as conn:
        out = await overview.company_overview(conn, uuid.UUID(ctx.company_id))
    assert out.tasks.total > 0


async def _api_overview(ctx: Context) -> None:
    response = await ctx.api.get(f"/v1/companies/{ctx.company_id}/overview")
    response.raise_for_status()


def _page(path: str, marker: str) -> Callable[[Context], Awaitable[None]]:
    async def render(ctx: Context) -> None:
        response = await ctx.dashboard.get(path.format(slug=ctx.slug))
        response.raise_for_status()
        assert marker in response.text, (path, response.text[:500])

    return render


def measurements() -> list[Measurement]:
    """The figures of this bench, the baseline first."""
    return [
        Measurement(BASELINE, _read_model),
        Measurement("GET /v1/companies/{c}/overview", _api_overview),
        Measurement("dashboard overview page", _page("/c/{slug}", 'id="in-flight"')),
        Measurement("dashboard tasks board", _page("/c/{slug}/tasks", 'id="col-done"')),
        Measurement("dashboard costs page", _page("/c/{slug}/costs", 'id="period-usd"')),
    ]


async def timed(ctx: Context, measurement: Measurement, n: int) -> list[float]:
    for _ in range(min(20, n)):  # warm the pools and the plans
        await measurement.call(ctx)
    out = []
    for _ in range(n):
        started = time.perf_counter()
        await measurement.call(ctx)
        out.append((time.perf_counter() - started) * 1000)
    return out


async def run(url: str, n: int) -> list[tuple[str, list[float]]]:
    engine = create_async_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            started = time.perf_counter()
            await rebuild.rebuild(conn)
            console.print(f"  counters rebuilt from the ledger: {time.perf_counter() - started:.1f}s")
            _, token = await api_tokens.create_token(conn, name="bench", scopes=["admin"])
            company_id = str((await conn.exec_driver_sql("SELECT id FROM companies")).scalar_one())
    finally:
        await engine.dispose()
    home = Path(tempfile.mkdtemp(prefix="ca-bench-dashboard-home-"))
    settings = Settings(home=home, database_url=url)
    db = Database(settings=settings, url=url)
    ctx = Context(url=url, home=home, db=db, company_id=company_id, slug="bench", token=token)
    api_base = ctx.serve(create_app(Database(settings=settings, url=url), settings))
    dashboard_db = Database(settings=settings, url=url)
    dashboard = create_dashboard_app(dashboard_db, settings)
    results = []
    try:
        async with (
            httpx.AsyncClient(
                base_url=api_base, headers={"Authorization": f"Bearer {token}"}, timeout=30
            ) as client,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=dashboard),
                base_url=f"http://127.0.0.1:{settings.dashboard_port}",
                timeout=30,
            ) as pages,
        ):
            entered = await pages.get(f"/?token={dashboard.state.access_token}")  # sets the cookie
            assert entered.status_code == 303, entered.status_code
            ctx.api, ctx.dashboard = client, pages
            for measurement in measurements():
                results.append((measurement.name, await timed(ctx, measurement, n)))
    finally:
        ctx.stop()
        await db.dispose()
        await dashboard_db.dispose()
        shutil.rmtree(home, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--audit", type=int, default=1_000_000)
    parser.add_argument("--costs", type=int, default=1_000_000)
    parser.add_argument("-n", type=int, default=200, help="timed calls per figure")
    parser.add_argument("--admin-dsn", help="a server to create a scratch database on (default: embedded)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="ca-bench-dashboard-"))
    with scratch_server(args.admin_dsn, workdir) as (admin, _, _):
        url = create_db(admin, migrate=True)
        try:
            console.print(
                f"building {args.tasks:,} tasks, {args.audit:,} audit events, {args.costs:,} cost entries…"
            )
            build(url, tasks=args.tasks, audit=args.audit, costs=args.costs)
            results = asyncio.run(run(url, args.n))
        finally:
            drop_db(admin, url)
            shutil.rmtree(workdir, ignore_errors=True)
    rows = [
        Row(
            name,
            percentile(samples, 95),
            {"p50 ms": percentile(samples, 50), "mean ms": statistics.fmean(samples)},
        )
        for name, samples in results
    ]
    print_results(
        rows,
        baseline=BASELINE,
        metric="p95 ms",
        title=f"overview: {args.tasks:,} tasks, {args.audit:,} audit events, {args.costs:,} cost entries;"
        f" {args.n} calls each",
    )


if __name__ == "__main__":
    main()
