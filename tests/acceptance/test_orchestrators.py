"""Several homes on one database (docs/deployment.md): one master key, and orchestrators that know
each other. Real `up` processes on the machine's PostgreSQL, each with a home of its own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.orchestrator import CLI, Orchestrator, wait_for
from tests.acceptance.test_cli_up import kill_and_reap
from tests.conftest import PgServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=60)


def listed(env: dict[str, str]) -> list[dict[str, Any]]:
    out = run(env, "orchestrators", "--json")
    assert out.returncode == 0, out.stderr
    rows: list[dict[str, Any]] = json.loads(out.stdout)
    return rows


@pytest.fixture
def homes(cli_env: dict[str, str], external_pg: PgServer, tmp_path: Path) -> Callable[[str], dict[str, str]]:
    url = external_pg.create_database()

    def make(name: str) -> dict[str, str]:
        home = tmp_path / name
        return {
            **cli_env,
            "COMPANY_AGENTS_HOME": str(home),
            "DATABASE_URL": url,
            "COMPANY_AGENTS_ISOLATION": "none",
            "COMPANY_AGENTS_HEARTBEAT_INTERVAL_SECONDS": "1",
            "COMPANY_AGENTS_SCHEDULER_POLL_SECONDS": "0.5",
            "COLUMNS": "200",
        }

    return make


@pytest.fixture
def start_up() -> Iterator[Callable[[dict[str, str]], Orchestrator]]:
    started: list[Orchestrator] = []

    def start(env: dict[str, str]) -> Orchestrator:
        started.append(Orchestrator(env))
        return started[-1]

    yield start
    for orch in started:
        kill_and_reap(orch.proc)


def key_file(env: dict[str, str]) -> Path:
    return Path(env["COMPANY_AGENTS_HOME"]) / "secrets" / "master.key"


def copy_key(source: dict[str, str], target: dict[str, str]) -> None:
    dest = key_file(target)
    dest.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    shutil.copyfile(key_file(source), dest)
    dest.chmod(0o600)


def key_id(env: dict[str, str]) -> str:
    from company_agents.master_key import MasterKey

    return MasterKey(key_file(env).read_bytes(), "test").key_id


def test_a_wrong_key_is_refused_and_a_new_home_never_makes_one(
    homes: Callable[[str], dict[str, str]],
) -> None:
    first = homes("first")
    made = run(first, "new", "--name", "Acme", "--teams", "Eng")
    assert made.returncode == 0, made.stderr
    owner = key_id(first)

    # A home attached to the database without the key: refused, and no key file appears.
    fresh = homes("fresh")
    attempts: list[tuple[str, ...]] = [("up",), ("secrets", "set", "--company", "acme", "token")]
    for args in attempts:
        out = subprocess.run([*CLI, *args], env=fresh, input="v", capture_output=True, text=True, timeout=60)
        assert out.returncode == 1
        assert f"belongs to master key {owner}" in out.stderr and "fix: copy key" in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
        assert not key_file(fresh).exists()

    # A fourth host with a key of its own: one line naming both keys and the fix.
    wrong = homes("wrong")
    key_file(wrong).parent.mkdir(parents=True, mode=0o700)
    key_file(wrong).write_bytes(os.urandom(32))
    key_file(wrong).chmod(0o600)
    attempts = [("up",), ("task", "create", "--company", "acme", "--title", "x", "--team", "Eng")]
    for args in attempts:
        out = run(wrong, *args)
        assert out.returncode == 1
        line = out.stderr.strip()
        assert len(line.splitlines()) == 1
        assert key_id(wrong) in line and owner in line and "fix: copy key" in line

    # With the key copied, the same home works.
    copy_key(first, fresh)
    out = run(fresh, "task", "create", "--company", "acme", "--title", "x", "--team", "Eng")
    assert out.returncode == 0, out.stderr


def test_orchestrators_lists_running_ups_and_shows_a_killed_one_gone(
    homes: Callable[[str], dict[str, str]], start_up: Callable[[dict[str, str]], Orchestrator]
) -> None:
    a, b = homes("a"), homes("b")
    assert run(a, "new", "--name", "Acme", "--teams", "Eng").returncode == 0
    copy_key(a, b)
    one, two = start_up(a), start_up(b)
    rows = listed(b)
    assert sorted(r["pid"] for r in rows) == sorted([one.proc.pid, two.proc.pid])
    assert all(r["status"] == "running" and r["alive"] for r in rows)
    assert {r["keyId"] for r in rows} == {key_id(a)}
    assert all(r["schemaRevision"] and r["version"] and r["isolation"] == "none" for r in rows)
    table = run(a, "orchestrators")
    assert table.returncode == 0 and str(one.proc.pid) in table.stdout and "running" in table.stdout
    doctor = json.loads(run(a, "doctor", "--json").stdout)
    check = next(c for c in doctor if c["name"] == "orchestrators")
    assert check["detail"].startswith("2 running") and not check["warning"]

    two.kill9()
    wait_for(
        lambda: any(r["pid"] == two.proc.pid and r["status"] == "gone" for r in listed(a)),
        what="the killed orchestrator shown as gone",
    )
    assert next(r for r in listed(a) if r["pid"] == one.proc.pid)["status"] == "running"

    # A clean stop removes the row.
    one.terminate()
    assert [r["pid"] for r in listed(a)] == [two.proc.pid]


def test_rotation_moves_the_key_and_every_running_up_notices(
    homes: Callable[[str], dict[str, str]], start_up: Callable[[dict[str, str]], Orchestrator]
) -> None:
    a, b = homes("a"), homes("b")
    assert run(a, "new", "--name", "Acme", "--teams", "Eng").returncode == 0
    copy_key(a, b)
    old = key_id(a)
    other = start_up(b)
    rotated = run(a, "secrets", "rotate-master-key", "--yes", "--json")
    assert rotated.returncode == 0, rotated.stderr
    new = json.loads(rotated.stdout)["newKeyId"]
    assert key_id(a) == new != old

    # The other host's `up` refuses at its next heartbeat: a clean stop, exit 1, one line with the fix.
    _, err = other.proc.communicate(timeout=60)
    assert other.proc.returncode == 1
    assert f"master key {old}" in err and f"master key {new}" in err and "fix: copy key" in err
    assert listed(a) == []  # it removed itself on the way out

    # Restarted with the new key copied over, it runs again.
    key_file(b).unlink()
    copy_key(a, b)
    again = start_up(b)
    assert [r["pid"] for r in listed(a)] == [again.proc.pid]
