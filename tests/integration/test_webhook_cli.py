"""The webhook commands through the real CLI; --json is the API's shape."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import PgServer

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "company_agents.cli.main"]


@pytest.fixture
def env(external_pg: PgServer, cli_env: dict[str, str]) -> dict[str, str]:
    # About the CLI, not the server: one backend is enough.
    return {**cli_env, "DATABASE_URL": external_pg.create_database()}


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)


def ok(env: dict[str, str], *args: str) -> str:
    result = cli(env, *args)
    assert result.returncode == 0, result.stderr or result.stdout
    return result.stdout


def ok_json(env: dict[str, str], *args: str) -> Any:
    return json.loads(ok(env, *args, "--json"))


def test_add_list_test_redeliver_remove(env: dict[str, str]) -> None:
    ok(env, "company", "create", "--name", "Acme")
    added = ok_json(
        env,
        "webhook",
        "add",
        "--company",
        "acme",
        "--url",
        "https://example.com/h",
        "--events",
        "task.*,budget.*",
    )
    assert added["secret"].startswith("whsec_") and added["events"] == ["task.*", "budget.*"]
    listed = ok_json(env, "webhook", "list", "--company", "acme")
    assert listed == [{k: v for k, v in added.items() if k != "secret"}]
    assert added["secret"] not in json.dumps(listed)
    short = added["id"][:8]
    assert "queued test delivery" in ok(env, "webhook", "test", short, "--company", "acme")
    (delivery,) = ok_json(env, "webhook", "deliveries", "--company", "acme")
    assert (delivery["status"], delivery["eventType"], delivery["attempts"]) == ("pending", "webhook.test", 0)
    ok(env, "webhook", "redeliver", str(delivery["id"]), "--company", "acme")
    assert len(ok_json(env, "webhook", "deliveries", "--company", "acme")) == 2
    for url in ["ftp://example.com/x", "file:///etc/passwd"]:
        refused = cli(env, "webhook", "add", "--company", "acme", "--url", url, "--events", "*")
        assert refused.returncode != 0 and "http" in (refused.stderr + refused.stdout)
    ok(env, "webhook", "remove", short, "--company", "acme")
    assert ok_json(env, "webhook", "list", "--company", "acme") == []
