"""``company-agents doctor``: each check is a line with ok/fail and, when it fails, the fix."""

from __future__ import annotations

import stat
from dataclasses import dataclass

from company_agents.db.database import Database, open_database
from company_agents.db.migrate import migration_status
from company_agents.errors import CompanyAgentsError
from company_agents.home import home_directories
from company_agents.master_key import master_key_location, master_key_status
from company_agents.runtime.orchestrator import check_port_free
from company_agents.settings import Settings


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "fix": self.fix}


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


def run_checks(settings: Settings) -> list[Check]:
    checks = [_home(settings), _master_key(settings)]
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
    for label, port in (
        ("api port", settings.api_port),
        ("dashboard port", settings.dashboard_port),
        ("tool port", settings.tool_port),
    ):
        checks.append(_port(settings.bind_host, port, label))
    return checks


def _port(host: str, port: int, label: str) -> Check:
    try:
        check_port_free(host, port)
    except CompanyAgentsError:
        return Check(
            label,
            False,
            f"{host}:{port} is in use",
            "stop the process using it, or choose another port (COMPANY_AGENTS_*_PORT)",
        )
    return Check(label, True, f"{host}:{port} free")
