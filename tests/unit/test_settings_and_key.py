from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from company_agents.db.database import check_server_version, redact, sqlalchemy_url
from company_agents.errors import ConfigError, MasterKeyError, UnsupportedDatabase
from company_agents.home import ensure_home
from company_agents.master_key import load_master_key, master_key_status
from company_agents.settings import Settings, check_bind_host, load_settings


def test_home_layout_is_created_private(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    ensure_home(settings)
    for sub in ("db", "data/storage", "data/backups", "secrets", "runs", "logs"):
        assert (settings.home / sub).is_dir()
    assert (settings.home / "config.json").exists()
    home_mode = stat.S_IMODE(settings.home.stat().st_mode)
    assert home_mode & 0o044 == 0  # at most traverse for others
    assert stat.S_IMODE(settings.secrets_dir.stat().st_mode) == 0o700


def test_master_key_is_created_0600_and_reused(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    ensure_home(settings)
    assert master_key_status(settings) == "missing"
    key = load_master_key(settings, create=True)
    path = settings.secrets_dir / "master.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_bytes()) == 32
    assert load_master_key(settings, create=False).key == key.key
    assert key.key.hex() not in repr(key)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_key_readable_by_others_is_refused_with_the_chmod(
    make_settings: Callable[..., Settings], mode: int
) -> None:
    settings = make_settings()
    ensure_home(settings)
    load_master_key(settings, create=True)
    path = settings.secrets_dir / "master.key"
    path.chmod(mode)
    with pytest.raises(MasterKeyError, match=rf"chmod 600 {path}"):
        load_master_key(settings, create=True)
    with pytest.raises(MasterKeyError, match="chmod 600"):
        master_key_status(settings)


def test_missing_key_with_secrets_in_database_is_refused(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    ensure_home(settings)
    with pytest.raises(MasterKeyError, match="holds encrypted secrets"):
        load_master_key(settings, create=True, database_has_secrets=True)
    assert not (settings.secrets_dir / "master.key").exists()


def test_master_key_path_and_env_source(
    make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    custom = tmp_path / "keys" / "k.bin"
    settings = make_settings(master_key_path=custom)
    load_master_key(settings, create=True)
    assert custom.exists()
    monkeypatch.setenv("CA_TEST_KEY", "ab" * 32)
    env_settings = make_settings(master_key_source="env://CA_TEST_KEY")
    assert load_master_key(env_settings, create=False).key == bytes.fromhex("ab" * 32)
    monkeypatch.setenv("CA_TEST_KEY", "too-short")
    with pytest.raises(MasterKeyError, match="32-byte"):
        load_master_key(env_settings, create=False)
    with pytest.raises(MasterKeyError, match="unsupported"):
        load_master_key(make_settings(master_key_source="vault://x"), create=False)


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COMPANY_AGENTS_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db.example/x")
    monkeypatch.setenv("COMPANY_AGENTS_MAX_CONCURRENT_RUNS", "6")
    settings = load_settings()
    assert settings.home == tmp_path / "h"
    assert not settings.uses_embedded
    assert settings.pool_size == 10
    monkeypatch.setenv("COMPANY_AGENTS_DB_POOL_SIZE", "3")
    assert load_settings().pool_size == 3
    monkeypatch.setenv("DATABASE_URL", "mysql://nope")
    with pytest.raises(ConfigError, match="postgresql://"):
        load_settings()


def test_url_helpers_hide_passwords() -> None:
    assert redact("postgresql://u:hunter2@h:5432/d") == "postgresql://u:***@h:5432/d"
    assert "hunter2" not in redact("postgresql://u:hunter2@h/d?sslmode=require")
    assert sqlalchemy_url("postgres://h/d") == "postgresql+psycopg://h/d"


class _OldServer:
    """Stands in for a PostgreSQL 14 connection: no such server runs on this machine."""

    class info:
        server_version = 140011

    def execute(self, query: str) -> Any:
        assert query == "SHOW server_version"

        class _Row:
            def fetchone(self) -> tuple[str]:
                return ("14.11",)

        return _Row()


def test_servers_older_than_15_are_refused_naming_the_version() -> None:
    with pytest.raises(UnsupportedDatabase, match=r"PostgreSQL 14\.11 found; .* 15 or newer"):
        check_server_version(_OldServer())  # type: ignore[arg-type]


def test_pool_size_follows_concurrency(make_settings: Callable[..., Settings]) -> None:
    assert make_settings(max_concurrent_runs=8).pool_size == 12
    assert make_settings(max_concurrent_runs=8, db_pool_size=2).pool_size == 2


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgresql://u:pw@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:p@ss@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql://:pw@h/db", "postgresql://:***@h/db"),
        ("postgresql://u@h/db?password=pw", "postgresql://u@h/db?password=***"),
        (
            "postgresql://u@h/db?sslmode=require&password=pw&x=1",
            "postgresql://u@h/db?sslmode=require&password=***&x=1",
        ),
        ("postgresql://u@h/db?sslpassword=pw", "postgresql://u@h/db?sslpassword=***"),
        ("host=h user=u password=pw dbname=d", "host=h user=u password=*** dbname=d"),
        ("host=h password = 'p w\\'x' dbname=d", "host=h password = *** dbname=d"),
        ("PASSWORD=pw", "PASSWORD=***"),
        (
            "cannot connect to postgresql://u:pw@h/db: refused",
            "cannot connect to postgresql://u:***@h/db: refused",
        ),
        ("postgresql://h:5432/db", "postgresql://h:5432/db"),
        ("no password here", "no password here"),
    ],
)
def test_redact_hides_every_way_of_writing_a_password(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_a_dotenv_in_the_working_directory_is_never_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "someone-elses-checkout"
    project.mkdir()
    (project / ".env").write_text(
        "DATABASE_URL=postgresql://them@db.example/theirs\nCOMPANY_AGENTS_API_PORT=1\n"
    )
    monkeypatch.chdir(project)
    for var in ("DATABASE_URL", "COMPANY_AGENTS_API_PORT", "COMPANY_AGENTS_HOME"):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    settings = load_settings(home=home)
    assert settings.database_url is None and settings.api_port == 3100
    # <home>/.env is ours: it is read, the environment wins over it, and it cannot move the home.
    home.mkdir()
    (home / ".env").write_text(
        f"DATABASE_URL=postgresql://us@h/ours\nCOMPANY_AGENTS_API_PORT=4000\nCOMPANY_AGENTS_HOME={tmp_path}/x\n"
    )
    monkeypatch.setenv("COMPANY_AGENTS_HOME", str(home))
    settings = load_settings()
    assert settings.database_url == "postgresql://us@h/ours" and settings.api_port == 4000
    assert settings.home == home
    monkeypatch.setenv("COMPANY_AGENTS_API_PORT", "4001")
    assert load_settings().api_port == 4001


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("example.com", False),
        ("localhost.example.com", False),
    ],
)
def test_only_loopback_bind_addresses_are_accepted(host: str, allowed: bool, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, bind_host=host)
    if allowed:
        check_bind_host(settings)
    else:
        with pytest.raises(ConfigError, match="no authentication"):
            check_bind_host(settings)
    # With an API token to authenticate /v1 any address may be bound; unknown yet (no database) waits.
    check_bind_host(settings, api_tokens=True)
    check_bind_host(settings, api_tokens=None)


def test_log_lines_never_carry_a_password() -> None:
    import logging

    from company_agents.logging_setup import FORMAT, RedactingFormatter

    record = logging.LogRecord(
        "x",
        logging.WARNING,
        __file__,
        1,
        "cannot reach %s",
        ("postgresql://u:hunter2@h/d?password=pw2",),
        None,
    )
    line = RedactingFormatter(FORMAT).format(record)
    assert "hunter2" not in line and "pw2" not in line and "postgresql://u:***@h/d" in line
