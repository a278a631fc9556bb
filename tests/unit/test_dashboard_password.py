"""The dashboard password: a scrypt hash in the home, checked in constant time; the CLI that sets it;
the host check that refuses a reachable dashboard without one."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from company_agents.dashboard.app import check_dashboard_host, dashboard_host, private_network
from company_agents.dashboard.password import check_password, hash_password, read_password_hash
from company_agents.errors import ConfigError, InvalidInput
from company_agents.settings import Settings

PASSWORD = "correct horse battery staple"


def test_a_hash_checks_its_password_and_nothing_else() -> None:
    stored = hash_password(PASSWORD)
    assert stored.startswith("scrypt$16384$8$1$") and PASSWORD not in stored
    assert check_password(PASSWORD, stored)
    assert not check_password(PASSWORD + "!", stored)
    assert hash_password(PASSWORD) != stored  # salted
    for broken in ("", "scrypt$1$2", "bcrypt$16384$8$1$AAAA$AAAA", stored.replace("$8$", "$x$")):
        assert not check_password(PASSWORD, broken), broken
    with pytest.raises(InvalidInput, match="at least 12"):
        hash_password("short")


def test_loopback_needs_no_password_and_another_address_does(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert check_dashboard_host(Settings(home=home)) is None
    assert dashboard_host(Settings(home=home, bind_host="10.0.0.5")) == "127.0.0.1"  # the API's, not ours
    reachable = Settings(home=home, dashboard_host="192.168.50.7")
    assert private_network(reachable)
    with pytest.raises(ConfigError, match="dashboard password"):
        check_dashboard_host(reachable)
    with pytest.raises(ConfigError, match="name the one browsers will use"):
        check_dashboard_host(Settings(home=home, dashboard_host="0.0.0.0"))


@pytest.mark.slow
def test_the_cli_sets_it_from_stdin_as_a_private_hash(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPANY_AGENTS_")}
    env["COMPANY_AGENTS_HOME"] = str(home)
    done = subprocess.run(
        [sys.executable, "-m", "company_agents.cli.main", "dashboard", "password", "--stdin"],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    settings = Settings(home=home)
    stored = read_password_hash(settings)
    assert stored and check_password(PASSWORD, stored)
    assert stat.S_IMODE(settings.dashboard_password_path.stat().st_mode) == 0o600
    assert check_dashboard_host(Settings(home=home, dashboard_host="192.168.50.7")) == stored
    short = subprocess.run(
        [sys.executable, "-m", "company_agents.cli.main", "dashboard", "password", "--stdin"],
        input="short\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert short.returncode != 0 and "at least 12" in short.stderr
