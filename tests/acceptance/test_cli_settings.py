"""Settings the real CLI takes from where it runs: never a working directory's `.env`, loopback binds only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PgServer

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "company_agents.cli.main"]


def run_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_working_directorys_dotenv_is_ignored_and_the_homes_is_read(
    external_pg: PgServer, cli_env: dict[str, str], home: Path, tmp_path: Path
) -> None:
    ours = external_pg.create_database()
    home.mkdir(parents=True)
    (home / ".env").write_text(f"DATABASE_URL={ours}\n")
    checkout = tmp_path / "another-project"
    checkout.mkdir()
    (checkout / ".env").write_text("DATABASE_URL=postgresql://them@127.0.0.1:1/their_app\n")
    result = run_cli("db", "status", "--json", env=cli_env, cwd=checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["upToDate"] is True  # the status of our database, not theirs
    assert "their_app" not in result.stdout + result.stderr


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7"])
def test_up_refuses_a_non_loopback_bind_address(
    host: str, cli_env: dict[str, str], home: Path, tmp_path: Path
) -> None:
    env = {**cli_env, "COMPANY_AGENTS_BIND_HOST": host}
    result = run_cli("up", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "no authentication" in result.stderr, result.stderr
    # Refused before any server listens; the database was opened to see that no API token exists.
