"""The real CLI: switching embedded ↔ DATABASE_URL with db export/import, and the backup commands."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.test_cli_up import CLI, run_cli
from tests.conftest import PgServer, ProductDb

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def ok(*args: str, env: dict[str, str]) -> Any:
    result = run_cli(*args, "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_switching_embedded_to_external_and_back(
    external_pg: PgServer, cli_env: dict[str, str], home: Path, tmp_path: Path
) -> None:
    ok("new", "--name", "Acme Corp", "--teams", "eng,ops", env=cli_env)
    ok("new", "--name", "Beta", env=cli_env)
    companies = ok("company", "list", env=cli_env)
    exported = ok("db", "export", str(tmp_path / "embedded.tar"), env=cli_env)
    assert exported["totalRows"] > 0 and exported["serverVersion"].startswith("18")

    external = {**cli_env, "DATABASE_URL": external_pg.create_empty_database()}
    imported = ok("db", "import", str(tmp_path / "embedded.tar"), env=external)
    assert sum(t["rows"] for t in imported["tables"]) == exported["totalRows"]
    assert ok("company", "list", env=external) == companies
    # The old embedded db/ is still there (keep it until sure); doctor points it out.
    doctor = run_cli("doctor", "--json", env=external)
    orphan = {c["name"]: c for c in json.loads(doctor.stdout)}["orphaned embedded db"]
    assert orphan["ok"] is False and str(home / "db") in orphan["detail"]

    back = ok("db", "export", str(tmp_path / "external.tar"), env=external)
    assert [t["sha256"] for t in back["tables"]] == [t["sha256"] for t in exported["tables"]]
    fresh = {**cli_env, "COMPANY_AGENTS_HOME": str(tmp_path / "home2")}
    ok("db", "import", str(tmp_path / "external.tar"), env=fresh)
    # The export carries the database's record of its master key: a home without that key may look
    # (a read needs no key) but any change is refused (it never makes a key of its own for an owned
    # database) until the key is copied over.
    assert ok("company", "list", env=fresh) == companies
    refused = run_cli("company", "create", "--name", "Gamma", env=fresh)
    assert refused.returncode == 1 and "belongs to master key" in refused.stderr
    assert not (tmp_path / "home2" / "secrets" / "master.key").exists()
    shutil.copyfile(home / "secrets" / "master.key", tmp_path / "home2" / "secrets" / "master.key")
    (tmp_path / "home2" / "secrets" / "master.key").chmod(0o600)
    ok("company", "create", "--name", "Gamma", env=fresh)
    assert len(ok("company", "list", env=fresh)) == len(companies) + 1


def test_import_errors_are_one_line(db_url: str, cli_env: dict[str, str], tmp_path: Path) -> None:
    env = {**cli_env, "DATABASE_URL": db_url}
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"definitely not an archive")
    result = run_cli("db", "import", str(bad), env=env)
    assert result.returncode == 1
    assert result.stderr.startswith("error: bad.tar is not a Company Agents database export")
    assert "Traceback" not in result.stderr


def test_backup_commands_and_a_restore_drill(
    product_db: ProductDb, request: pytest.FixtureRequest, cli_env: dict[str, str], home: Path, tmp_path: Path
) -> None:
    """In each database mode; the drill restores into the same mode (a fresh home's embedded server when
    there is no DATABASE_URL, an empty database on the same server otherwise)."""
    env = {**cli_env, **product_db.env}
    drill_db: dict[str, str] = {}
    if product_db.env:
        server: PgServer = request.getfixturevalue(f"{product_db.mode}_pg")
        drill_db = {"DATABASE_URL": server.create_empty_database()}
    # A key the test knows (to check it never reaches the output), in place before the first command:
    # the database records the first key used with it, and any other is refused.
    (home / "secrets").mkdir(parents=True, exist_ok=True, mode=0o700)
    (home / "secrets" / "master.key").write_bytes(b"k" * 32)
    (home / "secrets" / "master.key").chmod(0o600)
    ok("new", "--name", "Acme", env=env)
    (home / "runs" / "r1").mkdir(parents=True)
    (home / "runs" / "r1" / "log.txt").write_text("kept workspace\n")
    plain = ok("backup", "create", env=env)
    with_key = ok("backup", "create", "--include-secrets", env=env)
    assert (plain["includesSecrets"], with_key["includesSecrets"]) == (False, True)
    listed = ok("backup", "list", env=env)
    assert [b["name"] for b in listed] == [plain["name"], with_key["name"]]
    assert listed[0]["runFiles"] == 1 and "secrets" in listed[1]["contents"]
    human = run_cli("backup", "create", env=env)
    assert "master key is not in it" in human.stdout and "k" * 32 not in human.stdout + human.stderr
    assert ok("backup", "verify", plain["name"], env=env)["ok"] is True

    # The drill: restore into a scratch home and an empty database, then look at the companies.
    drill = {**cli_env, "COMPANY_AGENTS_HOME": str(tmp_path / "drill"), **drill_db}
    restored = ok("backup", "restore", with_key["path"], env=drill)
    assert restored["masterKey"] == "restored" and restored["runFiles"] == 1
    assert ok("company", "list", env=drill) == ok("company", "list", env=env)
    assert (tmp_path / "drill" / "runs" / "r1" / "log.txt").read_text() == "kept workspace\n"

    refused = run_cli("backup", "restore", with_key["path"], env=drill)
    assert refused.returncode == 1 and "--replace" in refused.stderr
    asked = subprocess.run(
        [*CLI, "backup", "restore", with_key["path"], "--replace"],
        env=drill,
        input="n\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert asked.returncode != 0 and "Replace ALL data" in asked.stderr
    assert (
        ok("backup", "restore", with_key["path"], "--replace", "--yes", env=drill)["masterKey"] == "matches"
    )

    pruned = ok("backup", "prune", env=env)
    assert len(pruned["kept"]) == 1 and len(pruned["removed"]) == 2
