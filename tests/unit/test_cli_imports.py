"""The CLI import rule (CONTRIBUTING.md): help and the command tree import no heavy module.

Every ``company-agents`` call imports every command module to build the tree, so a module-level import
of the database layer, Alembic, the web stack or the crypto library is paid by ``--help`` and by every
other command. Each case runs in a fresh interpreter and reads ``sys.modules`` when it is done.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

# Top-level packages (or exact modules) a command may import inside its body, never at module level.
HEAVY = (
    "sqlalchemy",
    "alembic",
    "fastapi",
    "starlette",
    "uvicorn",
    "cryptography",
    "psycopg",
    "httpx",
    "pydantic_settings",  # pydantic itself is Typer's (its parameter coercion), not ours to defer
    "asyncio",
    "company_agents.db.database",
    "company_agents.db.migrate",
    "company_agents.startup",
    "company_agents.cli.context",
)

PROBE = """
import json, sys
heavy = json.loads(sys.argv[2])
for name in json.loads(sys.argv[3]):
    __import__(name)
sys.argv = ["company-agents", *json.loads(sys.argv[1])]
from company_agents.cli.main import run
try:
    run()
except SystemExit:
    pass
print(json.dumps(sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy))))
"""


def heavy_modules(*args: str, preload: tuple[str, ...] = ()) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(args)), json.dumps(HEAVY), json.dumps(preload)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={"COLUMNS": "120", "PATH": "/usr/bin:/bin"},
    )
    found: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return found


# A usage error is what a typo gets: it answers as quickly as help.
@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("task", "--help"),
        ("tasks", "--help"),
        ("agent", "hire", "--help"),
        ("db", "--help"),
        ("cost", "show", "--help"),
        ("audit", "verify", "--help"),
        ("adapter", "check", "--help"),
        ("orchestrators", "--help"),
        ("token", "--help"),
        ("token", "create", "--help"),
        ("webhook", "add", "--help"),
        ("watch", "--help"),
        (),
        ("task", "list", "--no-such-option"),
    ],
    ids=lambda a: " ".join(a) or "(no arguments)",
)
def test_help_imports_no_heavy_module(args: tuple[str, ...]) -> None:
    assert heavy_modules(*args) == [], f"`company-agents {' '.join(args)}` imported heavy modules"


def test_the_probe_sees_an_import_when_there_is_one() -> None:
    # Or the cases above prove nothing.
    found = heavy_modules("--help", preload=("company_agents.db.database",))
    assert {"company_agents.db.database", "sqlalchemy", "psycopg"} <= set(found)


SCHEMAS_PROBE = """
import importlib, json, pkgutil, sys
import company_agents.api.schemas as schemas
for info in pkgutil.iter_modules(schemas.__path__):
    importlib.import_module(f"company_agents.api.schemas.{info.name}")
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("fastapi", "starlette"))))
"""


def test_the_api_schemas_import_no_web_framework() -> None:
    # A command's --json output is the API's model (e.g. `company list --json`): a CLI read that
    # loaded FastAPI for it would pay its import, a large part of the read's time.
    out = subprocess.run(
        [sys.executable, "-c", SCHEMAS_PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


ORCHESTRATOR_PROBE = """
import json, sys
import company_agents.runtime.orchestrator
late = ("mcp", "mcp_types", "alembic", "mako")
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in late)))
"""


def test_up_loads_neither_the_mcp_sdk_nor_alembic_before_its_ports_open() -> None:
    # `up` imports the orchestrator before it serves: the MCP SDK loads once every port answers
    # (api.mcp_mount), and Alembic only when a migration or an import needs it.
    out = subprocess.run(
        [sys.executable, "-c", ORCHESTRATOR_PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
