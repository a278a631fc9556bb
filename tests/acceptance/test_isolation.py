"""Agents cannot reach around the orchestrator (docs/security.md): a hostile agent under a real `up`.

In each isolated mode — ``user`` (`up` as root, as in CI) and ``sandbox`` (`up` as an unprivileged user
the test creates) — one `up` runs, side by side: a victim agent holding its lease; a hostile agent that
tries every escape and reports each result; the example writer agent, which must still do its job; and
two agents that exceed a resource limit. The hostile agent also leaves a grandchild in a session of its
own behind, which must be gone once its run has ended. In ``none`` mode the same agent shows what the
isolation is for (its escapes work), and that even there nothing outlives its run.
"""

from __future__ import annotations

import os
import pwd
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psutil
import pytest

from company_agents.demo import DEMO_TASKS
from tests.acceptance.isolation_helpers import (
    SANDBOX_USER,
    OsUser,
    Product,
    adapters,
    bwrap_works_for,
    ensure_os_user,
    remove_agent_users,
    traversable_by_others,
)
from tests.conftest import PgServer

pytestmark = [
    pytest.mark.slow,  # real `up`, agents and sandboxes
    pytest.mark.skipif(os.geteuid() != 0, reason="creates OS users: runs as root (as CI does)"),
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap (.ci/run installs it)"),
]

ESCAPES = (
    "read_master_key",
    "read_config",
    "list_runs",
    "read_other_workspace",
    "connect_embedded_socket",
    "connect_external_url",
    "read_orchestrator_environ",
    "read_orchestrator_cmdline",
    "signal_orchestrator",
    "lease_token_in_ps",
    "tool_with_other_token",
)
HANGER_MARKER = f"hanger-grandchild-{os.getpid()}"
# Agents that end badly, and how their runs must end: over a resource limit, or timed out while
# ignoring SIGTERM with a grandchild in a session of its own (both must be gone after the run).
OTHERS: dict[str, dict[str, Any]] = {
    "cpu": {"args": ["-c", "while True: pass"], "limits": {"cpuSeconds": 1}, "expect": "resource_limit"},
    "memory": {
        "args": ["-c", "data = bytearray(1 << 30)"],
        "limits": {"addressSpaceBytes": 300 << 20},
        "expect": "resource_limit",
    },
    "hanger": {
        "args": [
            "-c",
            "import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', sys.argv[1]], "
            "start_new_session=True); time.sleep(600)",
            HANGER_MARKER,
        ],
        "timeoutSeconds": 2,
        "expect": "timeout",
    },
}


@pytest.fixture(scope="module")
def desktop_user() -> Iterator[OsUser]:
    """An unprivileged user who can run this interpreter and bubblewrap (else the sandbox test skips)."""
    user = ensure_os_user(SANDBOX_USER)
    with traversable_by_others([Path(sys.executable), Path(__file__)]):
        why = bwrap_works_for(user)
        if why is not None:
            pytest.skip(f"unprivileged user namespaces do not work here: {why}")
        yield user


def _with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    user = parts.username or "postgres"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


def _setup(product: Product, mode_env: dict[str, str] | None = None) -> None:
    """config.json with every adapter, owned by whoever runs `up`."""
    import json

    home = product.home
    home.mkdir(parents=True, exist_ok=True)
    extra = {
        f"limited-{name}": {
            "type": "process",
            "binary": sys.executable,
            **{k: v for k, v in spec.items() if k != "expect"},
        }
        for name, spec in OTHERS.items()
    }
    (home / "config.json").write_text(json.dumps({"adapters": adapters(extra), **(mode_env or {})}))
    if product.user is not None:
        (home.parent / "tmp").mkdir()
        for path in (home.parent, home.parent / "tmp", home, home / "config.json"):
            os.chown(path, product.user.uid, product.user.gid)


def _runs(product: Product) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = product.cli(["run", "list", "--company", "acme"])[0]
    return rows


def _wait_runs(product: Product, done: Any, what: str, timeout: float = 90) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = _runs(product)
        if done(rows):
            return rows
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {rows}"
        time.sleep(0.3)


def _grandchildren(marker: str) -> list[int]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if marker in (proc.info["cmdline"] or []) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found


def _run_everything(product: Product, url_marker: str = "no-such-marker") -> dict[str, Any]:
    """Start `up`, hire the agents, run the tasks; what each agent's run did."""
    import json

    product.start()
    hire = [
        [
            "agent",
            "hire",
            "--company",
            "acme",
            "--name",
            name,
            "--role",
            "test",
            "--adapter",
            adapter,
            "--team",
            "Eng",
        ]
        for name, adapter in [
            ("victim", "scripted"),
            ("hostile", "hostile"),
            ("writer", "example"),
            *((f"limited-{n}", f"limited-{n}") for n in OTHERS),
        ]
    ]
    outputs = product.cli(
        ["new", "--name", "Acme", "--teams", "Eng"],
        *hire,
        [
            "task",
            "create",
            "--company",
            "acme",
            "--title",
            "victim",
            "--body",
            "wait_stop",
            "--agent",
            "victim",
        ],
    )
    victim_task = outputs[-1]["id"]
    product.agent_ids = [o["id"] for o in outputs[1:-1]]
    rows = _wait_runs(
        product,
        lambda rs: any(r["taskId"] == victim_task and r["status"] == "running" for r in rs),
        "the victim to run",
    )
    victim_run = next(r["id"] for r in rows if r["taskId"] == victim_task)
    assert product.up is not None
    marker = f"grandchild-{uuid.uuid4().hex}"
    brief = {
        "orchestratorPid": product.up.pid,
        "victimRunId": victim_run,
        "marker": url_marker,
        "grandchild": marker,
    }
    title, body, _ = DEMO_TASKS[1]
    tasks = product.cli(
        [
            "task",
            "create",
            "--company",
            "acme",
            "--title",
            "hostile",
            "--body",
            json.dumps(brief),
            "--agent",
            "hostile",
        ],
        ["task", "create", "--company", "acme", "--title", title, "--body", body, "--agent", "writer"],
        *(
            ["task", "create", "--company", "acme", "--title", n, "--body", n, "--agent", f"limited-{n}"]
            for n in OTHERS
        ),
    )
    ids = {name: t["id"] for name, t in zip(["hostile", "writer", *OTHERS], tasks, strict=True)}

    def ended(rs: list[dict[str, Any]]) -> bool:
        return all(any(r["taskId"] == tid and r["status"] != "running" for r in rs) for tid in ids.values())

    rows = _wait_runs(product, ended, "the runs to end")
    # Ended means ended: the detached grandchildren went with their runs.
    left = _grandchildren(marker) + _grandchildren(HANGER_MARKER)
    first = {
        name: min((r for r in rows if r["taskId"] == tid), key=lambda r: r["attempt"])
        for name, tid in ids.items()
    }
    out, err = product.stop()
    # The start-up summary goes to stderr (stdout is for --json output).
    return {"runs": first, "grandchildren": left, "summary": out + err, "stderr": err}


def _check_isolated(result: dict[str, Any], mode: str) -> None:
    runs = result["runs"]
    hostile = runs["hostile"]
    assert (hostile["status"], hostile["exitReason"], hostile["isolation"]) == ("succeeded", "complete", mode)
    attempts = hostile["output"]["output"]["attempts"]
    assert set(attempts) == set(ESCAPES)
    escaped = {name: a["detail"] for name, a in attempts.items() if a["escaped"]}
    assert not escaped, f"escapes that worked in {mode} mode: {escaped}"
    assert result["grandchildren"] == [], "a process of the hostile run outlived it"
    writer = runs["writer"]
    assert (writer["status"], writer["exitReason"], writer["isolation"]) == ("succeeded", "complete", mode)
    for name, spec in OTHERS.items():
        assert (runs[name]["exitReason"], runs[name]["isolation"]) == (spec["expect"], mode), (
            name,
            runs[name],
        )
    assert f"isolation  {mode}" in result["summary"]
    assert "WARNING" not in result["summary"]
    assert "Traceback" not in result["stderr"], result["stderr"][-2000:]


def test_user_mode_a_hostile_agent_escapes_nothing(tmp_path: Path, cli_env: dict[str, str]) -> None:
    """`up` as root, the embedded database: each agent under its own OS user, in its own namespaces."""
    product = Product(tmp_path / "home", cli_env)
    _setup(product)
    try:
        result = _run_everything(product)
        # Every agent ran under an OS user of its own: as many uids as agents, none of them root.
        uids = {pwd.getpwnam("ca-" + a.replace("-", "")[:12]).pw_uid for a in product.agent_ids}
    finally:
        product.kill()
        remove_agent_users(product.agent_ids)
    _check_isolated(result, "user")
    assert len(uids) == len(product.agent_ids) == 6 and 0 not in uids


def test_user_mode_with_an_external_database_its_url_stays_out_of_reach(
    tmp_path: Path, cli_env: dict[str, str], external_pg: PgServer
) -> None:
    """DATABASE_URL with a password: the agent finds it nowhere (env, /proc, the home, ps)."""
    marker = f"pw{uuid.uuid4().hex}"
    url = _with_password(external_pg.create_database(), marker)
    product = Product(tmp_path / "home", {**cli_env, "DATABASE_URL": url})
    _setup(product)
    try:
        result = _run_everything(product, marker)
    finally:
        product.kill()
        remove_agent_users(product.agent_ids)
    _check_isolated(result, "user")
    assert (
        "no DATABASE_URL"
        in result["runs"]["hostile"]["output"]["output"]["attempts"]["connect_external_url"]["detail"]
    )


def test_sandbox_mode_for_an_unprivileged_user_a_hostile_agent_escapes_nothing(
    desktop_user: OsUser, cli_env: dict[str, str]
) -> None:
    """`up` as an unprivileged user (a desktop): bubblewrap in an unprivileged user namespace."""
    base = Path(tempfile.mkdtemp(prefix="ca-sbx-", dir="/tmp"))
    product = Product(base / "home", cli_env, user=desktop_user)
    _setup(product)
    try:
        result = _run_everything(product)
    finally:
        product.kill()
        remove_agent_users(product.agent_ids)
        shutil.rmtree(base, ignore_errors=True)
    _check_isolated(result, "sandbox")


def test_none_mode_is_asked_for_warned_about_and_still_ends_every_process(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    """COMPANY_AGENTS_ISOLATION=none: the escapes work (that is what `none` means), `up` and `doctor`
    warn, and the detached grandchild is still found (by the run id in its environment) and ended."""
    product = Product(tmp_path / "home", {**cli_env, "COMPANY_AGENTS_ISOLATION": "none"})
    _setup(product)
    try:
        result = _run_everything(product)
        doctor = {c["name"]: c for c in product.doctor()}
    finally:
        product.kill()
        remove_agent_users(product.agent_ids)
    runs = result["runs"]
    assert runs["hostile"]["isolation"] == "none" and runs["hostile"]["status"] == "succeeded"
    attempts = runs["hostile"]["output"]["output"]["attempts"]
    assert attempts["read_master_key"]["escaped"] and attempts["read_config"]["escaped"]
    assert result["grandchildren"] == []
    assert runs["writer"]["status"] == "succeeded"
    assert all(runs[name]["exitReason"] == spec["expect"] for name, spec in OTHERS.items())
    assert "isolation  none" in result["summary"] and "WARNING" in result["summary"]
    assert doctor["isolation"]["warning"] and "NOT isolated" in doctor["isolation"]["detail"]


def test_up_refuses_to_start_without_a_way_to_isolate_agents(tmp_path: Path, cli_env: dict[str, str]) -> None:
    """No bwrap on the PATH and `none` not asked for: `up` says what to install, and starts nothing."""
    import subprocess

    from tests.acceptance.isolation_helpers import CLI

    env = {**cli_env, "COMPANY_AGENTS_HOME": str(tmp_path / "home"), "PATH": str(tmp_path / "empty")}
    out = subprocess.run([*CLI, "up"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "apt-get install bubblewrap" in out.stderr and "COMPANY_AGENTS_ISOLATION=none" in out.stderr
    assert not (tmp_path / "home").exists()  # refused before the home or the database was touched
