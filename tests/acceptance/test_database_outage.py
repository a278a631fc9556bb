"""The database goes away in the middle of a run, and the run still completes exactly once.

Two ways to lose it: ``kill -9`` of the embedded postmaster (restarted by ``up``'s supervisor, or by
the next CLI command on the same home if that comes first), and a stop/start of an external server (a
throwaway one: the machine's shared PostgreSQL is never stopped). The agent sends ``complete`` while the
database is away; the orchestrator must apply it once when it is back, and keep the lease renewed across
the outage.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from company_agents.db.embedded import EmbeddedServer
from company_agents.db.embedded_auth import PASSWORD_FILE_NAME
from tests.acceptance.orchestrator import CLI, Orchestrator, add_task, setup_company, wait_for
from tests.throwaway_pg import ThrowawayPostgres, find_bin_dir

pytestmark = pytest.mark.slow

# Renewed every 36 s. Every outage ends well within the lease window, even counting a slow restart on a
# loaded machine, so a lease that expires is the orchestrator's fault, not the test's.
LEASE_SECONDS = 60
OUTAGE_SECONDS = 7


@dataclass
class Backend:
    """How the test reaches, takes away and brings back the database the orchestrator uses."""

    env: dict[str, str]
    url: Callable[[], str]
    take_away: Callable[[], None]
    bring_back: Callable[[], None]


def _embedded_url(home: Path) -> str:
    """The embedded server's socket URL, from its ``postmaster.pid`` (port and socket directory)."""
    lines = (home / "db" / "postmaster.pid").read_text().splitlines()
    passfile = home / "secrets" / PASSWORD_FILE_NAME  # the server asks for its password
    return f"postgresql://postgres@/company_agents?host={lines[4]}&port={lines[3]}&passfile={passfile}"


class _EmbeddedAccess:
    """The test's own way in: after ``up`` stops, the last one out has stopped the server, so the test
    starts it (and holds a handle on it) to look at what was written."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.server: EmbeddedServer | None = None

    def url(self) -> str:
        if self.server is None and not (self.home / "db" / "postmaster.pid").exists():
            self.server = EmbeddedServer(self.home / "db")
            self.server.start()
        return _embedded_url(self.home)

    def close(self) -> None:
        if self.server is not None:
            self.server.release()


def _kill_embedded(home: Path) -> None:
    pid = int((home / "db" / "postmaster.pid").read_text().splitlines()[0])
    subprocess.run(["kill", "-9", str(pid)], check=True)
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), timeout=30, what="the postmaster to be gone")


def _restart_embedded(env: dict[str, str]) -> None:
    # Any command on the home starts the server again, unless up's supervisor already has.
    out = subprocess.run([*CLI, "db", "status"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


@pytest.fixture
def home() -> Iterator[Path]:
    """A home outside pytest's tmp dir: other pytest sessions on the machine reset
    ``/tmp/pytest-of-<user>`` to 0700, and the embedded server's user must reach its data dir when
    the server is started again mid-test."""
    root = Path(tempfile.mkdtemp(prefix="ca-home-"))
    yield root / "home"
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["embedded", "external"])
def backend(
    request: pytest.FixtureRequest, cli_env: dict[str, str], home: Path, tmp_path: Path
) -> Iterator[Backend]:
    env = {
        **cli_env,
        "COMPANY_AGENTS_SCHEDULER_POLL_SECONDS": "0.2",
        "COMPANY_AGENTS_SHUTDOWN_GRACE_SECONDS": "2",
        "COMPANY_AGENTS_LEASE_SECONDS": str(LEASE_SECONDS),
        "COMPANY_AGENTS_REAPER_INTERVAL_SECONDS": "0.5",
        # The agents wait for a file of the test's (GO_FILE), outside their workspace: a sandbox would
        # not show it to them. Isolation has tests of its own (test_isolation.py).
        "COMPANY_AGENTS_ISOLATION": "none",
    }
    if request.param == "embedded":
        access = _EmbeddedAccess(home)
        try:
            yield Backend(
                env=env,
                url=access.url,
                take_away=lambda: _kill_embedded(home),
                bring_back=lambda: _restart_embedded(env),
            )
        finally:
            access.close()
        return
    if find_bin_dir() is None:
        pytest.skip("no PostgreSQL binaries under /usr/lib/postgresql")
    server = ThrowawayPostgres().init()
    server.start()
    try:
        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE company_agents")
        url = server.url("company_agents")
        env["DATABASE_URL"] = url
        migrated = subprocess.run(
            [*CLI, "db", "migrate"], env=env, capture_output=True, text=True, timeout=120
        )
        assert migrated.returncode == 0, migrated.stderr
        yield Backend(env=env, url=lambda: url, take_away=server.stop, bring_back=server.start)
    finally:
        server.cleanup()


def _query(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def _task_status(backend: Backend, task_id: str) -> str:
    return str(_query(backend.url(), "SELECT status FROM tasks WHERE id = %s", task_id)[0][0])


def _logs(orchestrator_log: str, home: Path) -> str:
    """The orchestrator's log and the run logs, for the message of a failed assertion."""
    parts = ["--- orchestrator", orchestrator_log]
    if (home / "logs" / "orchestrator.log").exists():
        parts += ["--- orchestrator.log", (home / "logs" / "orchestrator.log").read_text()]
    for path in sorted((home / "logs" / "runs").glob("*.log")):
        parts += [f"--- {path.name}", path.read_text()]
    return "\n".join(parts)


def _assert_completed_once(backend: Backend, task_id: str, logs: str) -> None:
    try:
        _check_completed_once(backend.url(), task_id)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{logs}") from None


def _check_completed_once(url: str, task_id: str) -> None:
    assert _query(url, "SELECT status FROM tasks WHERE id = %s", task_id) == [("review",)]
    runs = _query(url, "SELECT attempt, status, exit_reason FROM runs WHERE task_id = %s", task_id)
    assert runs == [(1, "succeeded", "complete")], runs
    completed = _query(
        url, "SELECT count(*) FROM audit_events WHERE action = 'task.completed' AND subject_id = %s", task_id
    )
    assert completed == [(1,)]
    assert _query(url, "SELECT count(*) FROM leases") == [(0,)]
    assert _query(url, "SELECT count(*) FROM cost_entries WHERE task_id = %s", task_id) == [(1,)]


def test_a_complete_sent_while_the_database_is_away_is_applied_once(
    backend: Backend, home: Path, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    setup_company(backend.env, home, adapter_extra={"env": {"GO_FILE": str(go)}})
    task_id = add_task(backend.env, "wait_go")
    orch = Orchestrator(backend.env)
    try:
        wait_for(lambda: _task_status(backend, task_id) == "running", what="the run to start")
        wait_for(lambda: bool(list((home / "runs").glob("*/pid"))), what="the agent to start")
        backend.take_away()
        away_at = time.monotonic()
        go.write_text("go")  # progress, cost and complete all arrive while the database is away
        run_log = next((home / "logs" / "runs").glob("*.log"))
        wait_for(lambda: '"type": "complete"' in run_log.read_text(), what="the agent's complete")
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - away_at)))
        backend.bring_back()
        wait_for(lambda: _task_status(backend, task_id) == "review", timeout=90, what="the task in review")
    finally:
        logs = _logs(orch.terminate(), home)
    _assert_completed_once(backend, task_id, logs)
    assert orch.proc.returncode == 0


def test_the_lease_stays_renewed_across_an_outage(backend: Backend, home: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    setup_company(backend.env, home, adapter_extra={"env": {"GO_FILE": str(go)}})
    task_id = add_task(backend.env, "wait_go")
    orch = Orchestrator(backend.env)
    try:
        wait_for(lambda: _task_status(backend, task_id) == "running", what="the run to start")
        started = time.monotonic()
        ((run_id, claimed_at),) = _query(
            backend.url(), "SELECT run_id, renewed_at FROM leases WHERE task_id = %s", task_id
        )
        renewal = LEASE_SECONDS * 0.6  # after the run started; a second or so later, counting the spawn
        time.sleep(max(0.0, renewal - OUTAGE_SECONDS / 2 - (time.monotonic() - started)))
        backend.take_away()
        time.sleep(max(0.0, renewal + OUTAGE_SECONDS / 2 - (time.monotonic() - started)))
        backend.bring_back()
        wait_for(
            lambda: (
                _query(
                    backend.url(), "SELECT renewed_at > %s FROM leases WHERE run_id = %s", claimed_at, run_id
                )
                == [(True,)]
            ),
            timeout=LEASE_SECONDS,
            what="the renewal that failed in the outage to be retried",
        )
        go.write_text("go")
        wait_for(lambda: _task_status(backend, task_id) == "review", timeout=90, what="the task in review")
    finally:
        logs = _logs(orch.terminate(), home)
    _assert_completed_once(backend, task_id, logs)
