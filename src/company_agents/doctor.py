"""``company-agents doctor``: each check is a line with ok/fail and, when it fails, the fix."""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path

from company_agents.db.database import Database, open_database
from company_agents.db.embedded_auth import hba_is_ours
from company_agents.db.migrate import migration_status
from company_agents.errors import CompanyAgentsError
from company_agents.home import home_directories
from company_agents.isolation import choose_isolation
from company_agents.isolation.modes import INSTALL_HINT
from company_agents.master_key import master_key_location, master_key_status
from company_agents.port_owner import Orchestrator, orchestrator_at, port_owner
from company_agents.settings import Settings


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    # Passes, but says something the operator must know (agents running unisolated).
    warning: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "ok": self.ok,
            "detail": self.detail,
            "fix": self.fix,
            "warning": self.warning,
        }


def _home(settings: Settings) -> Check:
    missing = [str(p) for p in home_directories(settings) if not p.is_dir()]
    if missing:
        return Check(
            "home", False, f"missing {', '.join(missing)}", "run `company-agents up` once to create them"
        )
    mode = stat.S_IMODE(settings.home.stat().st_mode)
    if mode & 0o066:
        return Check(
            "home",
            False,
            f"{settings.home} is readable or writable by others (mode {mode:04o})",
            f"chmod 700 {settings.home}",
        )
    return Check("home", True, f"{settings.home} (mode {mode:04o})")


def _master_key(settings: Settings) -> Check:
    kind, where = master_key_location(settings)
    try:
        status = master_key_status(settings)
    except CompanyAgentsError as exc:
        fix = f"chmod 600 {where}" if "chmod" in exc.message else "see docs/configuration.md"
        return Check("master key", False, exc.message, fix)
    if status == "missing":
        return Check(
            "master key", False, f"{where} does not exist", "run `company-agents up` once to create it"
        )
    return Check("master key", True, f"{kind}://{where} (0600)" if kind == "file" else f"env://{where}")


def _isolation(settings: Settings) -> Check:
    """The mode `up` would run agents in, as it would choose it now."""
    try:
        iso = choose_isolation(settings)
    except CompanyAgentsError as exc:
        return Check(
            "isolation",
            False,
            exc.message,
            f"{INSTALL_HINT}, or set COMPANY_AGENTS_ISOLATION=none (see docs/security.md)",
        )
    if iso.warning:
        return Check(
            "isolation",
            True,
            f"{iso.mode}: WARNING: {iso.warning}",
            'unset COMPANY_AGENTS_ISOLATION (and "isolation" in config.json) to isolate agents',
            warning=True,
        )
    return Check("isolation", True, f"{iso.mode} ({iso.detail})")


def _embedded_auth(pgdata: Path, password_file: Path) -> Check:
    # Opening the database has already upgraded a trusting cluster; this says what holds now.
    if not hba_is_ours(pgdata):
        return Check(
            "database password",
            False,
            f"{pgdata / 'pg_hba.conf'} is not the one Company Agents writes: it may let connections in "
            "without the password",
            "stop every process of the instance, then start any command: it writes it again",
        )
    return Check("database password", True, f"required on every connection; kept in {password_file} (0600)")


def run_checks(settings: Settings) -> list[Check]:
    checks = [_home(settings), _master_key(settings), _isolation(settings)]
    db: Database | None = None
    try:
        if settings.uses_embedded and not (settings.db_dir / "PG_VERSION").exists():
            checks.append(
                Check(
                    "database",
                    False,
                    "the embedded database has not been created yet",
                    "run `company-agents up` (or `company-agents db migrate`)",
                )
            )
        else:
            db = open_database(settings)
            major = db.server_version_num // 10000
            kind = "embedded" if db.is_embedded else "DATABASE_URL"
            checks.append(Check("database", True, f"{kind} {db.display_url}, PostgreSQL {major}"))
            if db.embedded is not None:
                checks.append(_embedded_auth(db.embedded.pgdata, db.embedded.password_file))
    except CompanyAgentsError as exc:
        checks.append(
            Check("database", False, exc.message, "check DATABASE_URL, or that the server is running")
        )
    if db is not None:
        try:
            engine = db.sync_engine()
            status = migration_status(engine)
            engine.dispose()
            if status.up_to_date:
                checks.append(Check("migrations", True, f"at {status.current} (head)"))
                checks.append(_unpriced(db))
                checks.append(_orchestrators(db))
            else:
                checks.append(
                    Check(
                        "migrations",
                        False,
                        f"at {status.current or 'nothing'}, {len(status.pending)} pending",
                        "run `company-agents db migrate`",
                    )
                )
        finally:
            db.close()
    if settings.database_url and (settings.db_dir / "PG_VERSION").exists():
        checks.append(
            Check(
                "orphaned embedded db",
                False,
                f"{settings.db_dir} holds an embedded database but DATABASE_URL is set",
                "if you moved to DATABASE_URL and verified it, archive or delete that directory",
            )
        )
    checks += _agent_clis(settings)
    ours = orchestrator_at(settings.bind_host, settings.api_port)
    for label, port, variable in (
        ("api port", settings.api_port, "COMPANY_AGENTS_API_PORT"),
        ("dashboard port", settings.dashboard_port, "COMPANY_AGENTS_DASHBOARD_PORT"),
        ("tool port", settings.tool_port, "COMPANY_AGENTS_TOOL_PORT"),
    ):
        checks.append(_port(settings.bind_host, port, label, variable, ours))
    return checks


def _agent_clis(settings: Settings) -> list[Check]:
    """One line per agent-CLI adapter: its binary and version; per http adapter: whether the remote
    agent answers. One not installed (or down) is a warning, not a failure: an instance need not run
    every CLI (``adapter check NAME`` says more)."""
    import os

    from company_agents.adapters.clis.check import binary_finding
    from company_agents.adapters.config import load_adapters

    try:
        adapters = load_adapters(settings.config_path)
    except CompanyAgentsError as exc:
        return [Check("adapters", False, exc.message, f"fix {settings.config_path} (docs/adapters.md)")]
    checks = []
    for adapter in adapters.values():
        if adapter.is_remote:
            from company_agents.adapters.remote.check import reachable_finding

            # A remote agent may be down while this instance is fine: a warning, as a missing CLI is.
            reached = reachable_finding(adapter)
            checks.append(
                Check(f"adapter {adapter.name}", True, reached.detail, reached.fix, warning=not reached.ok)
            )
            continue
        if not adapter.is_cli:
            continue
        found = binary_finding(adapter, dict(os.environ))
        checks.append(
            Check(f"adapter {adapter.name}", True, found.detail, found.fix, warning=not found.ok)
            if not found.ok
            else Check(f"adapter {adapter.name}", True, found.detail)
        )
    return checks


UNPRICED_SQL = """
SELECT c.slug, coalesce(e.model, '(none)') AS model, count(*) AS entries
FROM cost_entries e JOIN companies c ON c.id = e.company_id
WHERE e.unpriced AND NOT EXISTS (SELECT 1 FROM cost_entries a WHERE a.adjusts_entry_id = e.id)
GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 5
"""


def _unpriced(db: Database) -> Check:
    """Cost entries no price covers are surfaced, never counted as $0 (docs/design.md §10)."""
    from sqlalchemy import text

    from company_agents.pricing import book_source

    engine = db.sync_engine()
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(UNPRICED_SQL)).all()
    finally:
        engine.dispose()
    if not rows:
        return Check("pricing", True, f"every cost entry is priced ({book_source()}, offline)")
    found = ", ".join(f"{slug}: {model} ({n})" for slug, model, n in rows)
    return Check(
        "pricing",
        False,
        f"unpriced cost entries (no override and not in {book_source()}): {found}",
        "`company-agents pricing set --company SLUG --model MODEL --input … --output …`, then "
        "`cost adjust --entry ID --reprice` for old entries (`cost entries --company SLUG --unpriced`)",
    )


def _orchestrators(db: Database) -> Check:
    """The running orchestrators agree on version and schema (docs/deployment.md); gone ones are listed."""
    import asyncio

    from company_agents.runtime.registry import list_orchestrators

    async def read() -> list[dict[str, object]]:
        try:
            async with db.engine.connect() as conn:
                return await list_orchestrators(conn)
        finally:
            await db.dispose()

    rows = asyncio.run(read())
    running = [r for r in rows if r["alive"]]
    gone = len(rows) - len(running)
    tail = f" ({gone} gone)" if gone else ""
    if not running:
        return Check("orchestrators", True, f"none running{tail}")
    versions = sorted({str(r["version"]) for r in running})
    schemas = sorted({str(r["schema_revision"]) for r in running})
    if len(versions) > 1 or len(schemas) > 1:
        who = ", ".join(f"{r['holder']} {r['version']}/{r['schema_revision']}" for r in running)
        return Check(
            "orchestrators",
            True,
            f"{len(running)} running with different versions or schemas (version/schema: {who}){tail}",
            "upgrade every host to the same version, then restart each `up` (see docs/deployment.md)",
            warning=True,
        )
    return Check(
        "orchestrators", True, f"{len(running)} running, version {versions[0]}, schema {schemas[0]}{tail}"
    )


def _port(host: str, port: int, label: str, variable: str, ours: Orchestrator | None) -> Check:
    """Free, or held by our own ``up`` (fine when it is healthy), or by another process (a failure)."""
    owner = port_owner(host, port)
    if owner.free:
        return Check(label, True, f"{host}:{port} free")
    # The owner cannot always be seen (another user's process): a healthy `up` on our API port then
    # vouches for the ports it serves.
    if ours is not None and (owner.pid is None or ours.pid is None or owner.pid == ours.pid):
        pid = ours.pid or owner.pid
        who = f"in use by Company Agents{f', pid {pid}' if pid else ''}"
        if ours.status == "ok":
            return Check(label, True, f"{host}:{port} {who}, healthy")
        return Check(
            label,
            False,
            f"{host}:{port} {who}, {ours.status} (database {ours.database})",
            "check the database (`company-agents logs` shows what up saw)",
        )
    holder = f"{owner.name or 'a process'} (pid {owner.pid})" if owner.pid else "another process"
    return Check(
        label,
        False,
        f"{host}:{port} is in use by {holder}, not by Company Agents",
        f"stop that process, or set {variable} to a free port",
    )
