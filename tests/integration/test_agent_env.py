"""A real agent process: its environment holds none of our credentials, its argv no lease token."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from company_agents import agents, leases, tasks
from company_agents.adapters.config import AdapterConfig
from company_agents.adapters.runner import AgentRun
from company_agents.db.database import Database, sqlalchemy_url
from company_agents.errors import InvalidInput
from company_agents.master_key import MasterKey
from company_agents.secrets_store import resolve_env
from company_agents.settings import Settings
from tests.conftest import PgServer
from tests.integration.queue_helpers import engine, make_world

__all__ = ["engine"]  # the fixture, re-exported for pytest

# Says where it is, waits to be looked at from outside, then completes.
AGENT = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    out = Path(os.environ["OUT_DIR"])
    (out / "pid").write_text(str(os.getpid()))
    while not (out / "go").exists():
        time.sleep(0.02)
    print(json.dumps({"type": "complete", "output": "ok"}), flush=True)
    """
)

ORCHESTRATOR_ENV = {
    "DATABASE_URL": "postgresql://orchestrator:db-secret@db.example/ca",
    "MASTER_KEY_PATH": "/secret/master.key",
    "MASTER_KEY_SOURCE": "env://CA_TEST_MASTER_KEY",
    "CA_TEST_MASTER_KEY": "00" * 32,
    "COMPANY_AGENTS_API_TOKEN": "api-secret",
    "PGAPPNAME": "pg-secret",  # a PG* name libpq reads but that cannot break the test's own connections
    "ANTHROPIC_BASE_URL": "http://127.0.0.1:9/gateway",  # declared: the one that passes
    "UNDECLARED_SECRET": "not-for-agents",
}
SECRET_VALUES = [v for k, v in ORCHESTRATOR_ENV.items() if k != "ANTHROPIC_BASE_URL"]


async def _wait_file(path: Path, run: asyncio.Task[object]) -> str:
    # The file appears (created empty) a moment before its text is written: wait for the text.
    while not path.exists() or not path.read_text():
        assert not run.done(), "the agent run ended before the agent started"
        await asyncio.sleep(0.02)
    return path.read_text()


@pytest.mark.slow
async def test_the_agent_process_sees_no_credential_and_no_token_in_argv(
    external_pg: PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in ORCHESTRATOR_ENV.items():
        monkeypatch.setenv(name, value)
    db_url = external_pg.create_database()
    eng = create_async_engine(sqlalchemy_url(db_url))
    out = tmp_path / "out"
    out.mkdir()
    try:
        world = await make_world(eng, agent_names=("ada",))
        async with eng.begin() as conn:
            await tasks.create_task(conn, company="acme", title="t", agent="ada", max_attempts=1)
            (claim,) = await leases.claim(
                conn, agent_id=world.agents["ada"]["id"], holder="test", lease_seconds=60
            )
        settings = Settings(home=tmp_path / "home", database_url=db_url)
        adapter = AdapterConfig(
            name="probe",
            type="process",
            binary=sys.executable,
            args=["-c", AGENT, "--run={{runId}}", "--fencing={{fencingToken}}"],
            env={"OUT_DIR": str(out), "MY_TOKEN": "{{leaseToken}}"},
            pass_env=("ANTHROPIC_BASE_URL",),
        )
        db = Database(settings=settings, url=db_url)
        run = AgentRun(settings, db, claim, adapter, asyncio.Event(), MasterKey(key=bytes(32), source="test"))
        running = asyncio.create_task(run.execute())
        pid = int(await _wait_file(out / "pid", running))
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode().rstrip("\0").split("\0")
        environ = dict(
            line.split("=", 1)
            for line in Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
            if line
        )
        (out / "go").write_text("")
        state = await asyncio.wait_for(running, timeout=60)
        await db.dispose()
    finally:
        await eng.dispose()

    assert state.outcome == "complete"
    assert cmdline[-2:] == [f"--run={claim.run_id}", f"--fencing={claim.fencing_token}"]
    assert not any(claim.lease_token in arg for arg in cmdline), "the lease token must not be in argv"
    # The token reaches the agent through its environment only.
    assert environ["CA_LEASE_TOKEN"] == claim.lease_token and environ["MY_TOKEN"] == claim.lease_token
    assert environ["ANTHROPIC_BASE_URL"] == ORCHESTRATOR_ENV["ANTHROPIC_BASE_URL"]
    forbidden = [
        n for n in environ if n == "DATABASE_URL" or n.startswith(("MASTER_KEY_", "COMPANY_AGENTS_", "PG"))
    ]
    assert forbidden == []
    assert "CA_TEST_MASTER_KEY" not in environ and "UNDECLARED_SECRET" not in environ
    leaked = [v for v in SECRET_VALUES if any(v in value for value in environ.values())]
    assert leaked == []


async def test_an_agent_record_may_not_name_a_reserved_variable(engine: AsyncEngine) -> None:
    world = await make_world(engine, agent_names=("ada",))
    async with engine.begin() as conn:
        with pytest.raises(InvalidInput) as info:
            await agents.hire_agent(
                conn,
                company="acme",
                name="eve",
                role="worker",
                adapter="process",
                adapter_config={"env": {"PGPASSWORD": {"secret": "db"}}},
            )
        assert "PGPASSWORD" in info.value.message
        # Records written before the rule are refused when the run starts.
        with pytest.raises(InvalidInput):
            await resolve_env(
                conn, MasterKey(key=bytes(32), source="test"), world.company_id, {"DATABASE_URL": "x"}
            )
