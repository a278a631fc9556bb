"""The first command on a fresh home sets it up, master key included, while the database holds no secrets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # the CLI as a subprocess, on the product's default embedded database

CLI = [sys.executable, "-m", "company_agents.cli.main"]


def run(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120)


def test_secrets_set_before_up_ever_ran_and_a_lost_key_still_refuses(
    cli_env: dict[str, str], home: Path
) -> None:
    assert not home.exists()
    assert run(cli_env, "new", "--name", "Acme").returncode == 0  # the first command: no `up` ever ran
    key = home / "secrets" / "master.key"
    assert key.is_file()
    stored = run(cli_env, "secret", "set", "--company", "acme", "api_key", stdin="s3cret-value")
    assert stored.returncode == 0, stored.stderr
    assert key.stat().st_mode & 0o777 == 0o600
    listed = run(cli_env, "secrets", "list", "--company", "acme")  # the plural still works
    assert listed.returncode == 0 and "api_key" in listed.stdout and "s3cret" not in listed.stdout

    hired = run(
        cli_env, "agent", "hire", "--company", "acme", "--name", "ada", "--role", "x", "--adapter", "nope"
    )
    assert hired.returncode == 0 and "no adapter 'nope'" in hired.stderr  # said at hire, not at run time

    key.unlink()  # a database that has a key never gets a fresh one in place of the lost one
    again = run(cli_env, "secret", "set", "--company", "acme", "other", stdin="x")
    assert again.returncode == 1
    assert "this database belongs to master key" in again.stderr and "holds no key" in again.stderr
    assert not key.exists()
