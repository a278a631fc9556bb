"""The trust commands through the real CLI: secrets never leak; audit verify survives a key rotation."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from company_agents.audit.seal import seal_pending
from company_agents.db.database import libpq_url, sqlalchemy_url
from company_agents.home import ensure_home
from company_agents.master_key import MasterKey, load_master_key
from company_agents.settings import Settings

pytestmark = pytest.mark.slow  # the CLI as a subprocess

CLI = [sys.executable, "-m", "company_agents.cli.main"]
PLAINTEXT = "sk-ant-api03-DO-NOT-LEAK-7777"
CREDENTIAL = "ghp_ALSO-DO-NOT-LEAK-8888"


class Session:
    """Runs CLI commands and keeps every byte they print, to scan for leaks."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.seen: list[str] = []

    def run(self, *args: str, stdin: str | None = None, ok: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*CLI, *args], env=self.env, input=stdin, capture_output=True, text=True, timeout=120
        )
        self.seen += [proc.stdout, proc.stderr]
        if ok:
            assert proc.returncode == 0, f"{args}: {proc.stderr}"
        return proc

    def json(self, *args: str) -> object:
        return json.loads(self.run(*args, "--json").stdout)


def seal(db_url: str, key: MasterKey) -> int:
    async def main() -> int:
        engine = create_async_engine(sqlalchemy_url(db_url), poolclass=NullPool)
        try:
            async with engine.begin() as conn:
                return await seal_pending(conn, key)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def test_secrets_integrations_memory_and_audit_through_the_cli(
    cli_env: dict[str, str], home: Path, db_url: str
) -> None:
    settings = Settings(home=home)
    ensure_home(settings)
    key = load_master_key(settings, create=True)
    cli = Session({**cli_env, "DATABASE_URL": db_url})
    cli.run("new", "--name", "Acme")

    cli.run("secrets", "set", "--company", "acme", "anthropic_api_key", stdin=PLAINTEXT + "\n")
    listed = cli.json("secrets", "list", "--company", "acme")
    assert isinstance(listed, list) and [s["name"] for s in listed] == ["anthropic_api_key"]
    assert set(listed[0]) == {"id", "name", "description", "keyId", "createdAt", "updatedAt", "lastUsedAt"}
    cli.run("secrets", "rotate", "--company", "acme", "anthropic_api_key", stdin=PLAINTEXT)
    assert "--value" not in cli.run("secrets", "set", "--help").stdout

    cli.run(
        "integration",
        "add",
        "--company",
        "acme",
        "--kind",
        "github",
        "--name",
        "gh",
        "--scopes",
        "repo,read:org",
        "--config",
        '{"org": "acme"}',
        "--credential-stdin",
        stdin=CREDENTIAL,
    )
    integrations = cli.json("integration", "list", "--company", "acme")
    assert isinstance(integrations, list)
    assert integrations[0]["credentialSecret"] == "integration.gh" and integrations[0]["scopes"] == [
        "repo",
        "read:org",
    ]

    cli.run(
        "memory", "write", "--company", "acme", "--scope", "company", "--topic", "mission", "--body", "v1"
    )
    cli.run("memory", "write", "--company", "acme", "--scope", "company", "--topic", "mission", stdin="v2\n")
    notes = cli.json("memory", "list", "--company", "acme")
    assert isinstance(notes, list) and [n["body"] for n in notes] == ["v2"]
    history = cli.json("memory", "list", "--company", "acme", "--topic", "mission", "--history")
    assert isinstance(history, list) and [n["body"] for n in history] == ["v2", "v1"]

    events = cli.json("audit", "list", "--company", "acme", "--action", "secret", "--since", "1h")
    assert isinstance(events, list)
    assert [e["action"] for e in events] == ["secret.created", "secret.rotated", "secret.created"][::-1]
    assert events[-1]["payload"] == {"name": "anthropic_api_key"}
    assert cli.json("audit", "list", "--actor", "user:", "--subject", "company:", "--limit", "1")
    assert cli.json("audit", "list", "--until", "2000-01-01") == []
    jsonl = cli.run("audit", "export", "--format", "jsonl").stdout.splitlines()
    exported = home / "audit.csv"
    cli.run("audit", "export", "--format", "csv", "--output", str(exported), "--company", "acme")
    with exported.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(jsonl) and rows[0]["action"] == "company.created"

    # Every command sealed what it wrote (no `up` here); rotate the master key: the trail still
    # verifies, with both keys.
    assert seal(db_url, key) == 0
    rotated = cli.json("secrets", "rotate-master-key", "--yes")
    assert isinstance(rotated, dict) and rotated["oldKeyId"] == key.key_id and rotated["reencrypted"] == 2
    new_key = load_master_key(settings, create=False)
    cli.run("memory", "write", "--company", "acme", "--scope", "company", "--topic", "after", "--body", "x")
    cli.run("new", "--name", "Beta")  # an event after the rotation: MAC'd and sealed under the new key
    assert seal(db_url, new_key) == 0
    report = cli.json("audit", "verify")
    assert isinstance(report, dict) and report["ok"] and set(report["keyIds"]) == {key.key_id, new_key.key_id}
    assert report["sealedEvents"] == report["eventsChecked"] and report["unproven"] == 0
    cli.run("secrets", "list", "--company", "acme")

    # Tampering is named, and exits non-zero.
    with psycopg.connect(libpq_url(db_url), autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("""UPDATE audit_events SET payload = '{"name": "x"}' WHERE action = 'secret.rotated'""")
        row = conn.execute("SELECT id FROM audit_events WHERE action = 'secret.rotated'").fetchone()
    assert row is not None
    failed = cli.run("audit", "verify", ok=False)
    assert failed.returncode == 1 and f"event {row[0]} (secret.rotated) was changed" in failed.stdout
    failed_json = cli.run("audit", "verify", "--company", "acme", "--json", ok=False)
    assert json.loads(failed_json.stdout)["firstProblem"]["eventId"] == row[0]

    # A wrong master key: a clear error, and nothing changes. Every command that loads the key is
    # refused (the database records the key that owns it; docs/deployment.md), reads included.
    key_file = home / "secrets" / "master.key"
    right = key_file.read_bytes()
    key_file.write_bytes(os.urandom(32))
    wrong = cli.run("secrets", "set", "--company", "acme", "other", stdin="v", ok=False)
    assert wrong.returncode == 1 and "is not this database's master key" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1
    key_file.write_bytes(right)
    still = cli.json("secrets", "list", "--company", "acme")
    assert isinstance(still, list) and [s["name"] for s in still] == ["anthropic_api_key", "integration.gh"]

    # Nothing the CLI printed, nothing in the logs, nothing in the audit rows holds a value.
    logs = "".join(p.read_text(errors="replace") for p in (home / "logs").rglob("*") if p.is_file())
    with psycopg.connect(libpq_url(db_url)) as conn:
        audit_rows = conn.execute(
            "SELECT coalesce(string_agg(t::text, ''), '') FROM audit_events t"
        ).fetchone()
    assert audit_rows is not None
    for haystack in [*cli.seen, logs, audit_rows[0], "\n".join(jsonl)]:
        assert PLAINTEXT not in haystack and CREDENTIAL not in haystack
