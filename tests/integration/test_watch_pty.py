"""`company-agents watch` in a pseudo-terminal: it follows a task through its states as the test moves
it (the redraws come from the event feed: the periodic refresh is set far beyond the test), opens the
inbox, approves from it, and quits on q."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from company_agents import agents, companies, tasks
from company_agents.db.database import sqlalchemy_url

pytestmark = pytest.mark.slow

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\x1b[=>78]")


class Terminal:
    """A process on the slave side of a pty; everything it draws, escape codes stripped, in ``seen``."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 140, 0, 0))
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
        os.close(slave)
        self.raw = b""

    @property
    def seen(self) -> str:
        return ANSI.sub("", self.raw.decode(errors="replace"))

    def _pump(self, timeout: float) -> None:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if ready:
            try:
                self.raw += os.read(self.master, 65536)
            except OSError:  # the child closed the terminal
                time.sleep(timeout)

    def wait_for(self, text: str, timeout: float = 20.0) -> None:
        """Until ``text`` is drawn after what was seen so far (a redraw, not the old frame)."""
        start = len(self.seen)
        deadline = time.monotonic() + timeout
        while text not in self.seen[start:]:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"{text!r} never appeared; the screen ended with:\n{self.seen[-3000:]}")
            self._pump(0.1)

    def wait_drawn(self, text: str, timeout: float = 20.0) -> None:
        """Until ``text`` is on screen at all (the first frame included)."""
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"{text!r} never appeared; the screen ended with:\n{self.seen[-3000:]}")
            self._pump(0.1)

    def press(self, key: str) -> None:
        os.write(self.master, key.encode())

    def close(self, timeout: float = 15.0) -> int | None:
        """The exit code once the process ends by itself within ``timeout``; else it is killed (None)."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
        finally:
            if self.master >= 0:
                os.close(self.master)
                self.master = -1


async def _seed(url: str) -> tuple[Any, str]:
    engine = create_async_engine(sqlalchemy_url(url))
    try:
        async with engine.begin() as conn:
            comp = await companies.create_company(conn, name="Acme", team_names=["Engineering"])
            await agents.hire_agent(
                conn, company="acme", name="ada", role="dev", adapter="process", team="Engineering"
            )
    finally:
        await engine.dispose()
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "INSERT INTO approvals (company_id, action, requested_by, expires_at)"
            " VALUES (%s, 'deploy the site', 'agent:ada', now() + interval '1 hour') RETURNING id",
            (comp["id"],),
        ).fetchone()
    assert row is not None
    return comp["id"], str(row[0])


async def _task(url: str, action: str, ref: str | None = None) -> str:
    engine = create_async_engine(sqlalchemy_url(url))
    try:
        async with engine.begin() as conn:
            if action == "create":
                return str((await tasks.create_task(conn, company="acme", title="probe task"))["id"])
            assert ref is not None
            await tasks.cancel_task(conn, ref)
            return ref
    finally:
        await engine.dispose()


async def test_watch_follows_a_task_and_approves(
    external_pg: Any, cli_env: dict[str, str], tmp_path: Path
) -> None:
    url = external_pg.create_database("watch")
    _, approval = await _seed(url)
    env = {**cli_env, "DATABASE_URL": url, "TERM": "xterm-256color", "COLUMNS": "140", "LINES": "50"}
    term = Terminal(
        [sys.executable, "-m", "company_agents.cli.main", "watch", "--company", "acme", "--refresh", "600"],
        env,
    )
    try:
        term.wait_drawn("queued 0", timeout=60)
        term.wait_drawn("inbox 1")
        term.wait_drawn("ada")
        task = await _task(url, "create")
        term.wait_for("queued 1")
        await _task(url, "cancel", task)
        term.wait_for("cancelled 1")

        term.press("i")
        term.wait_for("deploy the site")
        term.press("a")
        term.wait_for("approved: deploy the site")
        with psycopg.connect(url) as conn:
            status = conn.execute(
                "SELECT status, decided_by FROM approvals WHERE id = %s", (approval,)
            ).fetchone()
        assert status == ("approved", "user:local")
        term.wait_drawn("inbox 0")  # drawn with the message: no frame said so before
        term.press("q")
        assert term.close() == 0
    finally:
        term.close(timeout=0)


def test_once_without_a_terminal(external_pg: Any, cli_env: dict[str, str]) -> None:
    import asyncio

    url = external_pg.create_database("watch")
    asyncio.run(_seed(url))
    env = {**cli_env, "DATABASE_URL": url, "COLUMNS": "120"}
    out = subprocess.run(
        [sys.executable, "-m", "company_agents.cli.main", "watch"],  # the only company
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "Acme (acme)" in out.stdout and "queued 0" in out.stdout and "inbox 1" in out.stdout
    assert "q quit" not in out.stdout  # a printed frame names no keys
