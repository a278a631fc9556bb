"""One typed settings object, built once at the entry point and passed down."""

from __future__ import annotations

import ipaddress
import os
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from company_agents.errors import ConfigError

DEFAULT_HOME = Path("~/.company-agents/instances/default")


class Settings(BaseSettings):
    """Everything configurable about one orchestrator or CLI process.

    Variables carry the ``COMPANY_AGENTS_`` prefix, except the few names the product docs fix
    (``DATABASE_URL``, ``MASTER_KEY_PATH``, ``MASTER_KEY_SOURCE``, ``MCP_SERVER_URL``).
    """

    # No env_file here: a `.env` in the working directory belongs to whatever project the command runs
    # in (its DATABASE_URL is not ours). `load_settings` reads `<home>/.env` only.
    model_config = SettingsConfigDict(env_prefix="COMPANY_AGENTS_", extra="ignore", populate_by_name=True)

    home: Path = Field(default=DEFAULT_HOME)
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "database_url")
    )
    embedded_db_name: str = Field(default="company_agents")
    master_key_path: Path | None = Field(
        default=None, validation_alias=AliasChoices("MASTER_KEY_PATH", "master_key_path")
    )
    master_key_source: str | None = Field(
        default=None, validation_alias=AliasChoices("MASTER_KEY_SOURCE", "master_key_source")
    )
    mcp_server_url: str | None = Field(
        default=None, validation_alias=AliasChoices("MCP_SERVER_URL", "mcp_server_url")
    )
    # Loopback only while no API token exists (`check_bind_host`).
    bind_host: str = "127.0.0.1"
    # Largest request body the tool endpoint reads (413 beyond it).
    tool_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Largest workspace file the upload_asset tool copies into the company's assets.
    asset_max_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    api_port: int = 3100
    # Largest request body the REST API reads (413 beyond it).
    api_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Origins a browser may call the REST API from; none (no CORS headers at all) unless configured.
    api_cors_origins: list[str] = Field(default_factory=list)
    dashboard_port: int = 3101
    # Where the dashboard listens (`up --dashboard-host`): unset, loopback. Another address is the
    # private-network mode, which needs a dashboard password (dashboard/password.py).
    dashboard_host: str | None = None
    tool_port: int = 4200
    # The model gateway (docs/gateway.md): agents' model calls go through it unless `COMPANY_AGENTS_GATEWAY`
    # is off (then the key is handed to the agent). Its port sits next to the tool port.
    gateway: Literal["on", "off"] = "on"
    gateway_port: int = 4201
    # Model calls one run may make per minute; the same request body this many times in a row ends the
    # run as `loop_detected` (0: the rule is off); the output cap priced for a request that names none.
    gateway_rate_per_minute: int = Field(default=120, ge=1)
    gateway_loop_repeats: int = Field(default=5, ge=0)
    gateway_default_max_tokens: int = Field(default=32000, ge=1)
    # Largest model request the gateway reads (413 beyond it): requests carry images and documents.
    gateway_max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_concurrent_runs: int = Field(default_factory=lambda: max(2, (os.cpu_count() or 2) * 2))
    # Overrides the computed pool size (max_concurrent_runs + headroom); named in docs/configuration.md.
    db_pool_size: int | None = None
    auto_migrate: bool = False
    lease_seconds: float = 300.0
    reaper_interval_seconds: float = 5.0
    # How often `up` refreshes its row in the orchestrators registry (and re-reads the database's master
    # key); a row three intervals old is shown as gone (docs/deployment.md).
    heartbeat_interval_seconds: int = Field(default=10, ge=1, le=3600)
    max_attempts: int = 3
    # Retry backoff of failed attempts (leases.RetryBackoff): base * 2**(failures - 1), capped, jittered.
    retry_backoff_base_seconds: float = 5.0
    retry_backoff_cap_seconds: float = 300.0
    # Running agents (issue 4)
    run_timeout_seconds: float = 3600.0
    shutdown_grace_seconds: float = 10.0
    workspace_retention_days: float = 7.0
    # How agents are isolated (company_agents.isolation, docs/security.md): `auto` picks the strongest
    # mode this machine offers (`user` as root, else `sandbox`); `none` only when asked for.
    isolation: Literal["auto", "user", "sandbox", "none"] = "auto"
    # `user` mode: each agent runs as its own OS user, named this prefix + 12 hex digits of its id.
    agent_user_prefix: str = Field(default="ca-", pattern=r"^[a-z_][a-z0-9_-]{0,15}$")
    # Extra paths hidden from sandboxed agents (files or directories), on top of the instance home.
    sandbox_hide: list[Path] = Field(default_factory=list)
    # Resource limits per agent process (0 turns one off); an adapter's "limits" overrides them.
    agent_cpu_seconds: int = Field(default=3600, ge=0)
    agent_address_space_bytes: int = Field(default=32 * 1024**3, ge=0)
    agent_open_files: int = Field(default=8192, ge=0)
    # RLIMIT_NPROC counts the processes of a uid: applied in `user` mode only, where the uid is the agent's.
    agent_processes: int = Field(default=1024, ge=0)
    housekeeping_interval_seconds: float = 60.0
    scheduler_poll_seconds: float = 1.0
    # Approvals (approvals/): how long a request waits for a person before it expires (= denied), and
    # the longest a request_approval call holds the connection waiting for the answer (long poll).
    approval_expiry_seconds: float = Field(default=4 * 3600.0, gt=0)
    approval_wait_seconds: float = Field(default=30.0, ge=0, le=600)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Days a rotated, compressed `<home>/logs/<name>.log.<date>.gz` is kept.
    log_retention_days: int = Field(default=30, ge=1)
    # Scheduled backups inside `up` (0 turns them off) and what `backup prune` keeps.
    backup_interval_seconds: float = 86400.0
    backup_keep_daily: int = 7
    backup_keep_weekly: int = 4
    # Scheduled backups carry the master key only when this is set (a backup with the key decrypts secrets).
    backup_include_secrets: bool = False
    # Budgets (docs/budgets.md): what one claim reserves of its scopes' room (the overshoot bound is
    # written in terms of it), and the loop budget: tool calls in one run, unless its adapter sets
    # "loopBudget".
    budget_reservation_usd: Decimal = Field(default=Decimal("2.00"), gt=0)
    loop_budget_tool_calls: int = Field(default=100, ge=1)

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @field_validator("database_url", mode="after")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
            raise ConfigError("DATABASE_URL must start with postgresql:// (or postgres://)")
        return value

    @field_validator(
        "lease_seconds",
        "reaper_interval_seconds",
        "run_timeout_seconds",
        "scheduler_poll_seconds",
        mode="after",
    )
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be positive")
        return value

    @field_validator(
        "backup_interval_seconds",
        "backup_keep_daily",
        "backup_keep_weekly",
        "retry_backoff_base_seconds",
        "retry_backoff_cap_seconds",
        mode="after",
    )
    @classmethod
    def _not_negative(cls, value: float) -> float:
        if value < 0:
            raise ValueError("must not be negative")
        return value

    @property
    def uses_embedded(self) -> bool:
        return self.database_url is None

    @property
    def pool_size(self) -> int:
        """Connections per process: one per concurrent run plus headroom for API, reaper, housekeeping."""
        if self.db_pool_size is not None:
            return self.db_pool_size
        return self.max_concurrent_runs + 4

    @property
    def tool_url(self) -> str:
        """Where agents reach the tool endpoint (``MCP_SERVER_URL`` overrides it)."""
        return self.mcp_server_url or f"http://{self.bind_host}:{self.tool_port}"

    @property
    def gateway_url(self) -> str:
        """Where agents reach the model gateway (docs/gateway.md)."""
        return f"http://{self.bind_host}:{self.gateway_port}"

    @property
    def mcp_url(self) -> str:
        """Where agents reach the MCP server: ``/mcp`` of the tool endpoint."""
        return f"{self.tool_url.rstrip('/')}/mcp"

    @property
    def dashboard_password_path(self) -> Path:
        return self.home / "dashboard-password"

    @property
    def run_logs_dir(self) -> Path:
        return self.logs_dir / "runs"

    @property
    def db_dir(self) -> Path:
        return self.home / "db"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def cli_state_dir(self) -> Path:
        """Per task, an agent CLI's HOME between its runs (adapters.clis.state)."""
        return self.home / "cli-state"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def storage_dir(self) -> Path:
        return self.home / "data" / "storage"

    @property
    def backups_dir(self) -> Path:
        return self.home / "data" / "backups"

    @property
    def secrets_dir(self) -> Path:
        return self.home / "secrets"

    @property
    def config_path(self) -> Path:
        return self.home / "config.json"


ENV_FILE_NAME = ".env"


def home_of(overrides: dict[str, object]) -> Path:
    """The home the settings will have: ``--home``, else ``COMPANY_AGENTS_HOME``, else the default."""
    given = overrides.get("home") or os.environ.get("COMPANY_AGENTS_HOME") or DEFAULT_HOME
    return Path(str(given)).expanduser().absolute()


def load_settings(**overrides: object) -> Settings:
    """Build the settings from the environment and ``<home>/.env``; one clear message when invalid.

    The environment wins over the file. The home is fixed first (``home_of``) so the file cannot move it.
    """
    from pydantic import ValidationError

    home = home_of(overrides)
    env_file = home / ENV_FILE_NAME
    values: dict[str, Any] = {**overrides, "home": home}
    try:
        # _env_file is pydantic-settings' per-instance file (not a field, so mypy does not know it).
        return Settings(_env_file=env_file if env_file.is_file() else None, **values)  # type: ignore[call-arg]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise ConfigError(f"invalid setting {where}: {first['msg']}") from None


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or ``localhost``: reachable from this machine only."""
    if host.strip().lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # another host name: it may resolve to anything
        return False


def check_bind_host(settings: Settings, *, api_tokens: bool | None = False) -> None:
    """Refuse to serve beyond this machine while no API token exists (``api_tokens`` False): a
    non-loopback bind needs ``/v1`` to authenticate someone. ``None``: not known yet (the database is
    not open); ``runtime.orchestrator.serve`` checks again once it is."""
    if not is_loopback(settings.bind_host) and api_tokens is False:
        raise ConfigError(
            f"COMPANY_AGENTS_BIND_HOST={settings.bind_host} is not a loopback address and the API has no "
            "authentication configured (no API token): create one with `company-agents token create`, "
            "or bind 127.0.0.1, ::1 or localhost",
            field="bind_host",
        )
