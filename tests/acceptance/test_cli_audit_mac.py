"""Issue 9, item 12, through the real CLI with no `up` running: a CLI-only instance is protected too."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import psycopg
import pytest

from company_agents.db.database import libpq_url

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CLI = [sys.executable, "-m", "company_agents.cli.main"]


def run(
    env: dict[str, str], *args: str, stdin: str | None = None, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*CLI, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120)
    if ok:
        assert proc.returncode == 0, f"{args}: {proc.stdout}{proc.stderr}"
    return proc


def superuser(db_url: str, *statements: str) -> list[tuple[object, ...]]:
    """Behind the application's back: the append-only triggers off, results of the last statement."""
    rows: list[tuple[object, ...]] = []
    with psycopg.connect(libpq_url(db_url), autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        for statement in statements:
            cur = conn.execute(statement)
            rows = list(cur.fetchall()) if cur.description else []
    return rows


def test_a_payload_changed_on_a_cli_only_instance_is_caught(cli_env: dict[str, str], db_url: str) -> None:
    env = {**cli_env, "DATABASE_URL": db_url}
    run(env, "new", "--name", "Acme")
    run(env, "secrets", "set", "--company", "acme", "anthropic_api_key", stdin="sk-test\n")
    clean = json.loads(run(env, "audit", "verify", "--json").stdout)
    assert clean["ok"] and clean["unproven"] == 0 and clean["eventsChecked"] >= 2
    [(event_id,)] = superuser(
        db_url,
        """UPDATE audit_events SET payload = '{"name": "other"}' WHERE action = 'secret.created' """
        "RETURNING id",
    )
    failed = run(env, "audit", "verify", ok=False)
    assert failed.returncode == 1, failed.stdout
    assert f"event {event_id} (secret.created)" in failed.stdout
    report = json.loads(run(env, "audit", "verify", "--json", ok=False).stdout)
    assert report["firstProblem"]["eventId"] == event_id and not report["ok"]


def test_an_event_written_without_the_key_is_unproven(cli_env: dict[str, str], db_url: str) -> None:
    env = {**cli_env, "DATABASE_URL": db_url}
    run(env, "new", "--name", "Acme")
    # A foreign writer: a plain session (no MAC key), through the triggers like any application insert.
    with psycopg.connect(libpq_url(db_url), autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO audit_events (actor, action, subject_type, subject_id) "
            "VALUES ('user:mallory', 'task.completed', 'task', 'x') RETURNING id"
        ).fetchone()
    assert row is not None
    failed = run(env, "audit", "verify", ok=False)
    assert failed.returncode == 1
    assert "1 event" in failed.stdout and f"event {row[0]}" in failed.stdout
    report = json.loads(run(env, "audit", "verify", "--json", ok=False).stdout)
    assert report["unproven"] == 1 and report["firstProblem"]["eventId"] == row[0]


def test_deleting_the_newest_seals_with_their_events_is_caught_by_the_anchor(
    cli_env: dict[str, str], db_url: str, home: Path
) -> None:
    env = {**cli_env, "DATABASE_URL": db_url}
    run(env, "new", "--name", "Acme")
    run(env, "new", "--name", "Beta")
    assert json.loads(run(env, "audit", "verify", "--json").stdout)["ok"]
    anchor = home / "audit-anchor.json"
    assert anchor.is_file() and (anchor.stat().st_mode & 0o777) == 0o600
    anchored = json.loads(anchor.read_text())
    backup = json.loads(run(env, "backup", "create", "--json").stdout)
    with tarfile.open(backup["path"]) as tar:
        member = tar.extractfile("audit-anchor.json")
        assert member is not None
        assert json.loads(member.read())["sealId"] == anchored["sealId"]
    superuser(
        db_url,
        "DELETE FROM audit_events WHERE id >= "
        "(SELECT first_event_id FROM audit_seals ORDER BY id DESC LIMIT 1)",
        "DELETE FROM audit_seals WHERE id = (SELECT max(id) FROM audit_seals)",
    )
    failed = run(env, "audit", "verify", ok=False)
    assert (
        failed.returncode == 1 and "anchor" in failed.stdout and f"seal {anchored['sealId']}" in failed.stdout
    )
