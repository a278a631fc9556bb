"""The embedded server: shared by processes, healed after crashes, deterministic, private."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import psycopg
import pytest

from company_agents.db.database import libpq_url
from company_agents.db.embedded import EmbeddedServer

pytestmark = pytest.mark.slow  # every test starts embedded servers

OWNER = textwrap.dedent(
    """
    import sys, time, psycopg
    from pathlib import Path
    from company_agents.db.embedded import EmbeddedServer
    from company_agents.db.database import libpq_url
    server = EmbeddedServer(Path(sys.argv[1]))
    server.start()
    with psycopg.connect(libpq_url(server.uri("postgres")), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS marks (n int)")
        conn.execute("INSERT INTO marks VALUES (1)")
    print("ready", flush=True)
    if sys.argv[2] == "hold":
        time.sleep(600)
    server.release()
    """
)


def _postmasters(pgdata: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            if proc.info["name"] == "postgres" and str(pgdata) in " ".join(proc.info["cmdline"] or []):
                if proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
        except psutil.NoSuchProcess:
            continue
    return found


def _wait_gone(pgdata: Path, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _postmasters(pgdata):
            return True
        time.sleep(0.1)
    return False


def _spawn_owner(pgdata: Path, mode: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(pgdata), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        _, err = proc.communicate(timeout=30)
        raise AssertionError(err)
    return proc


def _count_marks(server: EmbeddedServer) -> int:
    with psycopg.connect(libpq_url(server.uri("postgres"))) as conn:
        row = conn.execute("SELECT count(*) FROM marks").fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def pgdata(tmp_path: Path) -> Path:
    return tmp_path / "db"


def test_kill_9_of_the_owner_then_a_new_start_heals_and_data_is_intact(pgdata: Path) -> None:
    owner = _spawn_owner(pgdata, "hold")
    os.kill(owner.pid, signal.SIGKILL)
    owner.communicate()
    assert _postmasters(pgdata), "the server outlives its killed owner (the leak we heal)"
    server = EmbeddedServer(pgdata)
    server.start()
    assert _count_marks(server) == 1
    server.release()
    # Healed: the dead owner's handle was dropped, so our release was the last and stopped the server.
    assert _wait_gone(pgdata)


def test_stale_postmaster_pid_naming_a_live_unrelated_process(pgdata: Path) -> None:
    _spawn_owner(pgdata, "exit").communicate(timeout=60)
    assert _wait_gone(pgdata)
    unrelated = subprocess.Popen(["sleep", "60"])
    # Popen returns once exec has begun, a moment before the kernel fills in the new command line; until
    # then the process looks like one that is exiting, which heal() rightly leaves alone.
    deadline = time.monotonic() + 10
    while not psutil.Process(unrelated.pid).cmdline() and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        pidfile = pgdata / "postmaster.pid"
        pidfile.write_text(
            f"{unrelated.pid}\n{pgdata}\n{int(time.time())}\n5432\n{pgdata}\n\n  1 2\nready \n"
        )
        server = EmbeddedServer(pgdata)
        server.start()
        assert _count_marks(server) == 1
        server.release()
        assert unrelated.poll() is None, "the unrelated process must be left alone"
    finally:
        unrelated.kill()
        unrelated.wait()
    assert _wait_gone(pgdata)


def test_processes_share_one_server_and_the_last_one_out_stops_it(pgdata: Path) -> None:
    orchestrator = EmbeddedServer(pgdata)
    orchestrator.start()
    before = {p.pid for p in _postmasters(pgdata)}
    cli = _spawn_owner(pgdata, "exit")  # attaches, writes, releases, exits
    cli.communicate(timeout=60)
    assert cli.returncode == 0
    assert {p.pid for p in _postmasters(pgdata)} == before, "a CLI leaving must not stop a shared server"
    assert _count_marks(orchestrator) == 1
    orchestrator.release()
    assert _wait_gone(pgdata)


def test_initdb_locale_is_deterministic(pgdata: Path) -> None:
    server = EmbeddedServer(pgdata)
    server.start()
    try:
        with psycopg.connect(libpq_url(server.uri("postgres"))) as conn:
            row = conn.execute(
                "SELECT datcollate, datctype, pg_encoding_to_char(encoding) FROM pg_database "
                "WHERE datname = 'postgres'"
            ).fetchone()
        assert row == ("C.UTF-8", "C.UTF-8", "UTF8")
    finally:
        server.release()


@pytest.mark.skipif(os.geteuid() != 0, reason="the root-only service-user path")
def test_as_root_private_parents_get_traverse_only(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    server = EmbeddedServer(private / "home" / "db")
    server.start()
    try:
        mode = stat.S_IMODE(private.stat().st_mode)
        assert mode == 0o711, f"{mode:04o}: a private directory must gain the traverse bit only"
        assert stat.S_IMODE((private / "home" / "db").stat().st_mode) == 0o700
    finally:
        server.release()
