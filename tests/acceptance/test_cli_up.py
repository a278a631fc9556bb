"""The real CLI as a subprocess: `up`, `doctor`, `db status`, errors."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import PgServer

pytestmark = pytest.mark.slow  # every test runs the CLI as a subprocess

CLI = [sys.executable, "-m", "company_agents.cli.main"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout)


def wait_healthy(port: int, proc: subprocess.Popen[str], timeout: float = 60) -> dict[str, object]:
    """The body of ``/healthz`` once ``up`` answers. If it never does (or the test is stopped meanwhile,
    as by pytest-timeout), ``up`` is killed and reaped here: left running in its own session it would
    compete with every later test, and its pipes would be closed by the garbage collector in whichever
    test runs next, failing that one with an unraisable ResourceWarning."""
    try:
        # One client for the whole wait: a client per poll loads the CA bundle each time, which on a
        # loaded machine costs `up` the CPU it needs to start.
        with httpx.Client(timeout=1, trust_env=False) as client:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    err = proc.stderr.read() if proc.stderr else ""
                    raise AssertionError(f"up exited {proc.returncode}: {err}")
                try:
                    resp = client.get(f"http://127.0.0.1:{port}/healthz")
                    if resp.status_code == 200:
                        body: dict[str, object] = resp.json()
                        return body
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        raise AssertionError("healthz never came up")
    except BaseException:
        kill_and_reap(proc)
        raise


def kill_and_reap(proc: subprocess.Popen[str]) -> None:
    """Kill whatever a test left running, with its whole group (`up` runs in its own session, and its
    agents with it), and reap it; ``communicate`` closes its pipes."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # not a group leader, or already gone
            proc.kill()
    proc.communicate(timeout=30)


def _embedded_postmasters(home: Path) -> list[psutil.Process]:
    out = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            if proc.info["name"] == "postgres" and str(home / "db") in " ".join(proc.info["cmdline"] or []):
                out.append(proc)
        except psutil.NoSuchProcess:
            continue
    return out


def test_up_on_an_empty_home_serves_healthz_and_stops_cleanly(cli_env: dict[str, str], home: Path) -> None:
    port = free_port()
    env = {**cli_env, "COMPANY_AGENTS_API_PORT": str(port)}
    proc = subprocess.Popen([*CLI, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        body = wait_healthy(port, proc)
        data = body["data"]
        assert isinstance(data, dict) and data["status"] == "ok" and data["embedded"] is True
        assert "requestId" in body["meta"]  # type: ignore[operator]
        key = home / "secrets" / "master.key"
        assert key.stat().st_mode & 0o777 == 0o600
        status = run_cli("db", "status", "--json", env=env)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["pending"] == []
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "Company Agents is up" in err
    deadline = time.monotonic() + 10
    while _embedded_postmasters(home) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _embedded_postmasters(home) == [], "up was the last user: no embedded server may be left"


def test_world_readable_master_key_stops_up_and_doctor(cli_env: dict[str, str], home: Path) -> None:
    assert run_cli("db", "migrate", env=cli_env).returncode == 0
    key = home / "secrets" / "master.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o644)
    env = {**cli_env, "COMPANY_AGENTS_API_PORT": str(free_port())}
    up = run_cli("up", env=env, timeout=60)
    assert up.returncode == 1
    assert f"chmod 600 {key}" in up.stderr
    assert "Traceback" not in up.stderr
    doctor = run_cli("doctor", env=env)
    assert doctor.returncode == 1
    assert f"chmod 600 {key}" in doctor.stdout


def test_up_refuses_a_stale_external_schema_naming_db_migrate(pg: PgServer, cli_env: dict[str, str]) -> None:
    url = pg.create_empty_database()
    env = {**cli_env, "DATABASE_URL": url, "COMPANY_AGENTS_API_PORT": str(free_port())}
    up = run_cli("up", env=env, timeout=60)
    assert up.returncode == 1
    assert "company-agents db migrate" in up.stderr
    status = run_cli("db", "status", "--json", env=env)
    assert json.loads(status.stdout)["current"] is None, "refusing must not migrate"
    migrate = run_cli("db", "migrate", "--json", env=env)
    assert migrate.returncode == 0 and json.loads(migrate.stdout)["upToDate"] is True
    status = run_cli("db", "status", "--json", env=env)
    assert json.loads(status.stdout) == {
        "current": json.loads(migrate.stdout)["head"],
        "head": json.loads(migrate.stdout)["head"],
        "pending": [],
        "upToDate": True,
    }


def test_doctor_reports_each_check_and_passes_on_a_healthy_home(cli_env: dict[str, str]) -> None:
    env = {
        **cli_env,
        "COMPANY_AGENTS_API_PORT": str(free_port()),
        "COMPANY_AGENTS_DASHBOARD_PORT": str(free_port()),
        "COMPANY_AGENTS_TOOL_PORT": str(free_port()),
    }
    first = run_cli("doctor", "--json", env=env)
    assert first.returncode == 1  # fresh home: nothing created yet
    names = {c["name"]: c for c in json.loads(first.stdout)}
    assert names["master key"]["ok"] is False and "up" in names["master key"]["fix"]
    port = int(env["COMPANY_AGENTS_API_PORT"])
    proc = subprocess.Popen([*CLI, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_healthy(port, proc)
        running = run_cli("doctor", "--json", env=env)
        assert running.returncode == 0, running.stdout  # our own up on its ports is the healthy state
        checks = {c["name"]: c for c in json.loads(running.stdout)}
        for name in ("api port", "dashboard port", "tool port"):
            assert checks[name]["detail"].endswith(f"in use by Company Agents, pid {proc.pid}, healthy")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    dashboard = int(env["COMPANY_AGENTS_DASHBOARD_PORT"])
    with socket.socket() as foreign:  # this test process is the foreign one
        foreign.bind(("127.0.0.1", dashboard))
        foreign.listen()
        taken = run_cli("doctor", env=env)
    assert taken.returncode == 1
    line = next(x for x in taken.stdout.splitlines() if "dashboard port" in x)
    # The holder's process name: python, or pytest when run through its console script.
    assert re.search(r"in use by (python|pytest)", line), line
    assert f"pid {os.getpid()}" in line and "not by Company Agents" in line
    assert "set COMPANY_AGENTS_DASHBOARD_PORT to a free port" in taken.stdout
    second = run_cli("doctor", "--json", env=env)
    assert second.returncode == 0, second.stdout
    assert {c["name"] for c in json.loads(second.stdout)} >= {
        "home",
        "master key",
        "database",
        "migrations",
        "api port",
        "dashboard port",
        "tool port",
    }
    # The home's embedded server (no DATABASE_URL here) asks every connection for its password.
    checks = {c["name"]: c for c in json.loads(second.stdout)}
    assert checks["database password"]["ok"] is True
    assert "db.pgpass" in checks["database password"]["detail"]


@pytest.mark.slow
def test_errors_are_one_line_and_debug_shows_the_traceback(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    plain = run_cli("db", "status", env=env)
    assert plain.returncode == 1
    assert plain.stderr.count("\n") == 1, plain.stderr  # exactly one line
    assert plain.stderr.startswith("error: cannot connect")
    debug = run_cli("--debug", "db", "status", env=env)
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    bad = run_cli("db", "status", env={**cli_env, "DATABASE_URL": "mysql://x"})
    assert bad.returncode == 1 and "DATABASE_URL must start with postgresql://" in bad.stderr


@pytest.mark.slow
@pytest.mark.parametrize("args", [["db", "status"], ["doctor"], ["doctor", "--json"]])
@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:s3cr3t-pw@127.0.0.1:1/none",
        "postgresql://u@127.0.0.1:1/none?password=s3cr3t-pw",
        "postgresql://u@127.0.0.1:1/none?sslmode=disable&password=s3cr3t-pw",
    ],
)
def test_password_in_database_url_never_printed(args: list[str], url: str, cli_env: dict[str, str]) -> None:
    result = run_cli(*args, env={**cli_env, "DATABASE_URL": url})
    assert result.returncode == 1
    assert "s3cr3t-pw" not in result.stdout + result.stderr
    assert "127.0.0.1" in result.stdout + result.stderr  # the URL is shown, only its password hidden
