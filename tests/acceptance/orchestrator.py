"""Helpers to run real `company-agents up` processes against a test database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from tests.acceptance.test_cli_up import free_port, wait_healthy

CLI = [sys.executable, "-m", "company_agents.cli.main"]
AGENT = Path(__file__).parent / "agents" / "scripted.py"


def cli(env: dict[str, str], *args: str) -> Any:
    out = subprocess.run([*CLI, *args, "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def set_secret(env: dict[str, str], name: str, value: str, company: str = "acme") -> None:
    """``secret set`` with the value on stdin, as a user types it (never in argv)."""
    done = subprocess.run(
        [*CLI, "secret", "set", "--company", company, name],
        env=env,
        input=value,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def setup_company(
    env: dict[str, str],
    home: Path,
    *,
    agents: int = 1,
    adapter_extra: dict[str, Any] | None = None,
    capacity: int = 1,
) -> None:
    """A company with `agents` agents on the scripted test adapter."""
    home.mkdir(parents=True, exist_ok=True)
    cli(env, "new", "--name", "Acme", "--teams", "Eng")
    config_path = home / "config.json"
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    config["adapters"] = {
        "scripted": {
            "type": "process",
            "binary": sys.executable,
            "args": [str(AGENT)],
            "protocol": "json-lines",
            **(adapter_extra or {}),
        }
    }
    config_path.write_text(json.dumps(config))
    for i in range(agents):
        cli(
            env,
            "agent",
            "hire",
            "--company",
            "acme",
            "--name",
            f"agent{i}",
            "--role",
            "test",
            "--adapter",
            "scripted",
            "--team",
            "Eng",
            "--max-concurrent-tasks",
            str(capacity),
        )


def add_task(env: dict[str, str], mode: str, *extra: str) -> str:
    task_id: str = cli(
        env,
        "task",
        "create",
        "--company",
        "acme",
        "--title",
        f"task {mode}",
        "--body",
        mode,
        "--team",
        "Eng",
        *extra,
    )["id"]
    return task_id


class Orchestrator:
    def __init__(self, env: dict[str, str], *, tool_port: int | None = None) -> None:
        self.api_port, self.tool_port = free_port(), tool_port or free_port()
        self.gateway_port = free_port()
        self.env = {
            **env,
            # Each up its own ports, the gateway's too (cli_env's is shared by every up of one test).
            "COMPANY_AGENTS_GATEWAY_PORT": str(self.gateway_port),
            "COMPANY_AGENTS_API_PORT": str(self.api_port),
            "COMPANY_AGENTS_TOOL_PORT": str(self.tool_port),
            "COMPANY_AGENTS_DASHBOARD_PORT": str(free_port()),
        }
        self.proc = subprocess.Popen(
            [*CLI, "up"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        wait_healthy(self.api_port, self.proc)

    def terminate(self, timeout: float = 60) -> str:
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=timeout)
        return err

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.communicate(timeout=30)


def query(db_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(sql, params).fetchall()


def wait_for(check: Callable[[], bool], timeout: float = 60, what: str = "condition") -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return False
